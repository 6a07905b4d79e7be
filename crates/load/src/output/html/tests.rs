use super::super::digest::RunDigest;
use super::super::fixture::{self, HOSTILE};
use super::*;

fn report() -> String {
    let results = fixture::results();
    let digest = RunDigest::of(&fixture::plan(), &results, &fixture::verdicts());
    render(&digest, &results)
}

/// The `d` attributes of every `<path>`.
fn path_data(page: &str) -> Vec<&str> {
    page.split("<path d=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

#[test]
fn escape_covers_markup_and_both_quotes() {
    assert_eq!(
        escape(r#"<a href='x'>"&"</a>"#),
        "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;"
    );
}

#[test]
fn a_hostile_name_is_text_never_markup() {
    let page = report();
    assert!(!page.contains(HOSTILE));
    assert!(
        !page.to_ascii_lowercase().contains("<script"),
        "no script element, and no injected one"
    );
    assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
}

#[test]
fn one_self_contained_document() {
    let page = report();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.trim_end().ends_with("</html>"));
    // The only URL is the SVG namespace, which is a name, not a fetch.
    let without_namespace = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for external in [
        "http://", "https://", "src=", "href=", "@import", "url(", "<link",
    ] {
        assert!(!without_namespace.contains(external), "found {external}");
    }
    for (open, close) in [("<svg", "</svg>"), ("<table", "</table>"), ("<ul", "</ul>")] {
        assert_eq!(
            page.matches(open).count(),
            page.matches(close).count(),
            "{open}"
        );
    }
}

#[test]
fn title_names_the_scenarios_and_the_date() {
    let page = report();
    let title = page
        .split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next())
        .unwrap_or_default();
    assert!(
        title.starts_with("reliable load: baseline, &lt;script&gt;"),
        "{title}"
    );
    assert!(title.ends_with("2023-11-14 22:13:20 UTC"), "{title}");
}

#[test]
fn summary_thresholds_and_four_charts_with_real_lines() {
    let page = report();
    assert!(page.contains("<h2>Summary</h2>") && page.contains("<h3>Scenario baseline</h3>"));
    assert!(
        page.contains("<h3>Setup</h3>")
            && page.contains("captured 100 values: slugs &lt;- json /slug")
    );
    assert!(page.contains("Rate not held: 90 of 1200 scheduled arrivals"));
    assert!(page.contains("check <q>is redirect</q>: 1100 passed"));
    assert!(page.contains("1 of 3 thresholds passed (exit code 99)"));
    assert_eq!(page.matches("class=\"pass\">✓").count(), 1);
    assert_eq!(page.matches("class=\"fail\">✗").count(), 2);
    assert_eq!(page.matches("<svg").count(), 4);
    let paths = path_data(&page);
    // Latency: p50 + p99 per series (6), rate (3), errors (3), percentiles (3).
    assert_eq!(paths.len(), 15, "{paths:?}");
    for d in paths {
        assert!(d.starts_with('M'), "{d}");
        assert!(d.matches(" L").count() >= 10, "too few segments: {d}");
        let numbers: Vec<f64> = d
            .split(['M', 'L', ' '])
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect();
        let ys: Vec<f64> = numbers.iter().skip(1).step_by(2).copied().collect();
        let spread =
            ys.iter().fold(f64::MIN, |a, b| a.max(*b)) - ys.iter().fold(f64::MAX, |a, b| a.min(*b));
        assert!(spread > 5.0, "a flat line: {d}");
    }
}

#[test]
fn an_empty_run_still_renders() {
    let results = crate::results::Results::default();
    let digest = RunDigest::of(&fixture::plan(), &results, &[]);
    let page = render(&digest, &results);
    assert!(page.contains("No per-second data was recorded."));
    assert!(page.contains("No latency was recorded."));
    assert!(page.contains("<h2>Thresholds</h2>\n<p class=\"meta\">None.</p>"));
    assert!(page.contains("reliable load: no scenario"));
}
