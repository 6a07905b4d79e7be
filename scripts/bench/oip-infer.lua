-- wrk script: POST one Open Inference Protocol v2 infer request, the same
-- body every time, read once from the file named by $BODY_FILE.
--
--   BODY_FILE=target/peer/one-row.json wrk -t1 -c64 -d10s -s scripts/bench/oip-infer.lua \
--       http://127.0.0.1:18080/v2/models/digits/infer
local path = os.getenv("BODY_FILE")
if path == nil or path == "" then
  error("set BODY_FILE to the path of the JSON request body")
end
local f = assert(io.open(path, "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
