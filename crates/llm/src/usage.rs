//! placeholder: the usage ledger (being written)
