use super::*;

const PRICING: &str = "\
currency: EUR
resources: {cpu_core_hour: 0.04, ram_gib_hour: 0.005}
llm:
  gpt-x: {input_per_1k: 0.5, output_per_1k: 1.5}
llm_self_hosted:
  small: {hourly: 2}
budgets:
  modules: {inference: 300}
  keys: {team-a: 50}
";

fn pricing(text: &str) -> Pricing {
    Pricing::parse(text).expect("pricing")
}

fn exprs(groups: &[RuleGroup]) -> Vec<&str> {
    groups
        .iter()
        .flat_map(|g| g.rules.iter().map(Rule::expr))
        .collect()
}

#[test]
fn every_expression_parses() {
    let groups = groups(&pricing(PRICING));
    let all = exprs(&groups);
    // 3 price series, 4 rates × 3 windows, 2 alerts × 2 budgets.
    assert_eq!(all.len(), 3 + 12 + 4, "{all:#?}");
    for expr in all {
        slo::promql::parses(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    }
}

#[test]
fn a_module_budget_is_two_window_pairs_on_its_recorded_rate() {
    let groups = groups(&pricing(PRICING));
    let alerts: Vec<_> = groups[1]
        .rules
        .iter()
        .filter_map(|r| match r {
            Rule::Alert {
                alert,
                expr,
                for_,
                labels,
                annotations,
            } if alert == MODULE_ALERT => Some((expr, for_, labels, annotations)),
            _ => None,
        })
        .collect();
    assert_eq!(alerts.len(), 2);
    let (expr, for_, labels, annotations) = alerts[0];
    assert_eq!(
        expr,
        "sum by (module) (module:cost_per_hour:rate6h{module=\"inference\"}) * 720 > 600 \
         and sum by (module) (module:cost_per_hour:rate30m{module=\"inference\"}) * 720 > 600"
    );
    assert_eq!(*for_, Some(Window::minutes(15)));
    assert_eq!(labels["budget_burn"], "fast");
    assert_eq!(labels["severity"], "ticket");
    assert!(
        annotations["summary"].contains("over twice its budget of 300 EUR"),
        "{annotations:?}"
    );
    assert_eq!(annotations["runbook_url"], RUNBOOK);
    let (expr, for_, labels, _) = alerts[1];
    assert!(expr.contains("rate3d{module=\"inference\"}) * 720 > 300 and"));
    assert_eq!(*for_, Some(Window::hours(1)));
    assert_eq!(labels["budget_burn"], "slow");
}

#[test]
fn prices_become_a_table_that_tokens_join_on() {
    let groups = groups(&pricing(PRICING));
    let rates = &groups[0].rules;
    let price = rates
        .iter()
        .find(|r| matches!(r, Rule::Record { record, labels, .. } if record == TOKEN_PRICE && labels["gen_ai_token_type"] == "output"))
        .expect("output price");
    assert_eq!(price.expr(), "vector(1.5)");
    let external = rates
        .iter()
        .find(|r| matches!(r, Rule::Record { record, labels, .. } if record == "key_model:llm_cost_per_hour:rate6h" && labels["basis"] == "external"))
        .expect("external rate");
    assert!(external
        .expr()
        .contains("group_left cost:llm_token_price:per_1k) * 3.6"));
}

#[test]
fn without_llm_prices_or_budgets_only_module_rates_are_recorded() {
    let plain = "currency: USD\nresources: {cpu_core_hour: 0.04, ram_gib_hour: 0.005}\n";
    let groups = groups(&pricing(plain));
    assert_eq!(groups.len(), 1, "no budgets, no alert group");
    assert!(groups[0]
        .rules
        .iter()
        .all(|r| r.expr().contains("by (module)")));
    assert_eq!(groups[0].rules.len(), 6);
}

#[test]
fn budgets_must_name_a_module_or_a_possible_key() {
    let modules = ["gateway", "inference", "llm"];
    assert_eq!(check(&pricing(PRICING), &modules), Ok(()));
    let typo = PRICING.replace("inference: 300", "inferense: 300");
    let error = check(&pricing(&typo), &modules).expect_err("unknown module");
    assert_eq!(
        error.to_string(),
        "budgets.modules.inferense: no module is named `inferense` (modules: gateway, inference, llm)"
    );
    let bad_key = PRICING.replace("team-a: 50", "'Team A': 50");
    let error = check(&pricing(&bad_key), &modules).expect_err("bad key");
    assert!(
        error
            .to_string()
            .starts_with("budgets.keys.Team A: a budget name"),
        "{error}"
    );
}

#[test]
fn a_negative_budget_is_refused_where_the_file_is_read() {
    let negative = PRICING.replace("team-a: 50", "team-a: -50");
    let error = Pricing::parse(&negative).expect_err("negative");
    assert!(error.to_string().contains("budgets.keys.team-a"), "{error}");
}
