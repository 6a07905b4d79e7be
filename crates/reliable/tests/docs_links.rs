//! The documentation's links hold: README.md and every page under docs/.
//!
//! Why a test and not a tool: the docs are a small book whose pages link to
//! each other and into the code, and a moved file or a renamed heading
//! breaks a reader's path silently. This test reads the Markdown itself, so
//! it runs offline with the rest of the suite and needs nothing installed.
//!
//! It checks that
//! - every relative link and image points at a file or directory inside the
//!   repository;
//! - every `#fragment` names a heading of its target page, slugged as GitHub
//!   does (lower case, punctuation dropped, spaces to `-`, `-1`, `-2` for
//!   repeats);
//! - no link leaves the repository (`http://`, `https://`, `mailto:`, bare
//!   URLs that GitHub would turn into links): the docs stay inside the repo;
//! - docs/README.md, the index, reaches every page under docs/, directly or
//!   through pages it links.
//!
//! Code blocks and inline code are not Markdown links and are skipped, so
//! commands such as `curl http://127.0.0.1:8080/...` stay as they are.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Component, Path, PathBuf};

/// The workspace root: two levels above this crate's manifest.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md and every `*.md` under docs/, as paths relative to the root.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("README.md")];
    let mut dirs = vec![PathBuf::from("docs")];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(root.join(&dir))
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let relative = dir.join(entry.file_name());
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                dirs.push(relative);
            } else if relative.extension().is_some_and(|e| e == "md") {
                found.push(relative);
            }
        }
    }
    found.sort();
    found
}

/// One link found in a page: its target as written, and its line.
#[derive(Debug, Clone, PartialEq)]
struct Link {
    line: usize,
    target: String,
}

/// Every link of a Markdown text: inline links and images `[t](target)`,
/// reference definitions `[label]: target`, autolinks `<https://...>`, and
/// bare `http(s)://` URLs (GitHub links them). Fenced code blocks and
/// inline code spans are skipped.
fn links(markdown: &str) -> Vec<Link> {
    let mut found = Vec::new();
    let mut fence: Option<&str> = None;
    for (index, raw) in markdown.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim_start();
        if let Some(marker) = fence {
            if trimmed.starts_with(marker) {
                fence = None;
            }
            continue;
        }
        if trimmed.starts_with("```") {
            fence = Some("```");
            continue;
        }
        if trimmed.starts_with("~~~") {
            fence = Some("~~~");
            continue;
        }
        let text = without_code_spans(raw);
        if let Some(target) = reference_definition(&text) {
            found.push(Link { line, target });
            continue;
        }
        for target in inline_targets(&text) {
            found.push(Link { line, target });
        }
    }
    found
}

/// The line with each inline code span replaced by spaces.
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        let ticks = rest[start..].len() - rest[start..].trim_start_matches('`').len();
        let marker = &rest[start..start + ticks];
        let after = &rest[start + ticks..];
        match after.find(marker) {
            Some(end) => {
                out.push_str(&rest[..start]);
                out.push_str(&" ".repeat(ticks * 2 + end));
                rest = &after[end + ticks..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// `[label]: target` at the start of a line.
fn reference_definition(line: &str) -> Option<String> {
    let trimmed = line.trim_start();
    let rest = trimmed.strip_prefix('[')?;
    let close = rest.find("]:")?;
    if rest[..close].contains('[') {
        return None;
    }
    let target = rest[close + 2..].split_whitespace().next()?;
    Some(target.trim_matches(['<', '>']).to_string())
}

/// Targets of `[text](target)`, `![alt](target)`, `<scheme://...>` and bare
/// URLs in one line (code spans already blanked).
fn inline_targets(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut found = Vec::new();
    let mut consumed = vec![false; chars.len()];
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '[' && (i == 0 || chars[i - 1] != '\\') {
            if let Some(close) = matching(&chars, i, '[', ']') {
                if chars.get(close + 1) == Some(&'(') {
                    if let Some(end) = matching(&chars, close + 1, '(', ')') {
                        let inside: String = chars[close + 2..end].iter().collect();
                        let target = inside.split_whitespace().next().unwrap_or("");
                        found.push(target.trim_matches(['<', '>']).to_string());
                        consumed[close + 1..=end].iter_mut().for_each(|c| *c = true);
                        i = close + 1;
                        continue;
                    }
                }
            }
        }
        if chars[i] == '<' {
            if let Some(len) = chars[i + 1..].iter().position(|c| *c == '>') {
                let inside: String = chars[i + 1..i + 1 + len].iter().collect();
                if is_url(&inside) && !inside.contains(' ') {
                    found.push(inside);
                    consumed[i..=i + 1 + len].iter_mut().for_each(|c| *c = true);
                    i += len + 2;
                    continue;
                }
            }
        }
        i += 1;
    }
    // Bare URLs outside the links already taken: GitHub links these too.
    let rest: String = chars
        .iter()
        .zip(&consumed)
        .map(|(c, taken)| if *taken { ' ' } else { *c })
        .collect();
    for scheme in ["http://", "https://"] {
        let mut from = 0;
        while let Some(at) = rest[from..].find(scheme) {
            let start = from + at;
            let word: String = rest[start..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, ')' | '>' | '|'))
                .collect();
            found.push(word.trim_end_matches(['.', ',', ';', ':']).to_string());
            from = start + scheme.len();
        }
    }
    found
}

/// The index of the bracket closing the one at `open`, counting nesting.
fn matching(chars: &[char], open: usize, left: char, right: char) -> Option<usize> {
    let mut depth = 0usize;
    for (offset, c) in chars[open..].iter().enumerate() {
        if *c == left {
            depth += 1;
        } else if *c == right {
            depth -= 1;
            if depth == 0 {
                return Some(open + offset);
            }
        }
    }
    None
}

fn is_url(target: &str) -> bool {
    let lower = target.to_ascii_lowercase();
    ["http://", "https://", "mailto:", "www.", "ftp://"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

/// GitHub's anchor for a heading's text: inline code, emphasis and link
/// syntax reduced to their text, lower case, every character that is not a
/// letter, digit, `-`, `_` or space dropped, spaces turned into `-`.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let chars: Vec<char> = heading.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        // [text](target) -> text
        if chars[i] == '[' {
            if let Some(close) = matching(&chars, i, '[', ']') {
                if chars.get(close + 1) == Some(&'(') {
                    if let Some(end) = matching(&chars, close + 1, '(', ')') {
                        text.extend(&chars[i + 1..close]);
                        i = end + 1;
                        continue;
                    }
                }
            }
        }
        text.push(chars[i]);
        i += 1;
    }
    text.trim()
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings (ATX `#` headings outside code), with
/// GitHub's `-1`, `-2` suffixes for repeated slugs.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut found = BTreeSet::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !trimmed.starts_with('#') {
            continue;
        }
        let level = trimmed.len() - trimmed.trim_start_matches('#').len();
        let title = &trimmed[level..];
        if level > 6 || !(title.is_empty() || title.starts_with(' ')) {
            continue;
        }
        let title = title.trim().trim_end_matches('#').trim();
        let base = slug(title);
        let count = seen.entry(base.clone()).or_insert(0);
        let anchor = if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        };
        *count += 1;
        found.insert(anchor);
    }
    found
}

/// `a/./b/../c` -> `a/c`; `None` when the path climbs above the root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What is wrong with one link of `page`, if anything; `Ok` carries the
/// Markdown page it leads to (for the reachability check).
fn check(root: &Path, page: &Path, target: &str) -> Result<Option<PathBuf>, String> {
    if is_url(target) {
        return Err("links outside the repository; mention the project in plain text".into());
    }
    if target.is_empty() {
        return Err("empty link target".into());
    }
    if target.starts_with('/') {
        return Err("absolute path; use a path relative to the page".into());
    }
    let (path, fragment) = match target.split_once('#') {
        Some((path, fragment)) => (path, Some(fragment)),
        None => (target, None),
    };
    let resolved = if path.is_empty() {
        page.to_path_buf()
    } else {
        let base = page.parent().unwrap_or(Path::new(""));
        normalize(&base.join(path)).ok_or("climbs out of the repository")?
    };
    let on_disk = root.join(&resolved);
    if !on_disk.exists() {
        return Err(format!("{} does not exist", resolved.display()));
    }
    let is_page = resolved.extension().is_some_and(|e| e == "md");
    if let Some(fragment) = fragment {
        if !is_page {
            return Err(format!("#{fragment} on a file that is not a Markdown page"));
        }
        let text = std::fs::read_to_string(&on_disk).map_err(|e| e.to_string())?;
        if !anchors(&text).contains(fragment) {
            return Err(format!(
                "{} has no heading with the anchor #{fragment}",
                resolved.display()
            ));
        }
    }
    Ok(is_page.then_some(resolved))
}

#[test]
fn every_link_in_the_docs_resolves_inside_the_repository() {
    let root = repo_root();
    let mut broken = Vec::new();
    for page in pages(&root) {
        let text = std::fs::read_to_string(root.join(&page)).expect("page is readable");
        for link in links(&text) {
            if let Err(why) = check(&root, &page, &link.target) {
                broken.push(format!(
                    "{}:{}: ({}) {why}",
                    page.display(),
                    link.line,
                    link.target
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} broken link(s):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn the_docs_index_reaches_every_page_under_docs() {
    let root = repo_root();
    let index = PathBuf::from("docs/README.md");
    assert!(
        root.join(&index).exists(),
        "docs/README.md, the index, is missing"
    );
    let mut reached = BTreeSet::from([index.clone()]);
    let mut queue = VecDeque::from([index]);
    while let Some(page) = queue.pop_front() {
        let text = std::fs::read_to_string(root.join(&page)).expect("page is readable");
        for link in links(&text) {
            if let Ok(Some(next)) = check(&root, &page, &link.target) {
                if next.starts_with("docs") && reached.insert(next.clone()) {
                    queue.push_back(next);
                }
            }
        }
    }
    let unreached: Vec<String> = pages(&root)
        .into_iter()
        .filter(|page| page.starts_with("docs") && !reached.contains(page))
        .map(|page| page.display().to_string())
        .collect();
    assert!(
        unreached.is_empty(),
        "docs/README.md does not reach these pages (link them from the index or a page it reaches):\n{}",
        unreached.join("\n")
    );
}

#[test]
fn the_checker_finds_what_it_must() {
    let text = "# Title\n\
        See [a](missing.md), ![img](pic.png \"t\") and [`code` link](../x.md#part).\n\
        Visit https://example.com today, or <https://example.org>.\n\
        Not a link: `[a](b)` nor `https://example.net`.\n\
        ```sh\ncurl [x](y) http://127.0.0.1:8080/\n```\n\
        [ref]: other.md#top\n";
    let targets: Vec<String> = links(text).into_iter().map(|l| l.target).collect();
    assert_eq!(
        targets,
        [
            "missing.md",
            "pic.png",
            "../x.md#part",
            "https://example.org",
            "https://example.com",
            "other.md#top"
        ]
    );
    let root = repo_root();
    let page = Path::new("docs/README.md");
    assert!(check(&root, page, "no-such-page.md").is_err());
    assert!(check(&root, page, "https://example.com").is_err());
    assert!(check(&root, page, "../../outside.md").is_err());
    assert!(check(&root, page, "/README.md").is_err());
    assert!(check(&root, page, "../README.md#no-such-heading").is_err());
    assert!(check(&root, page, "../Cargo.toml#x").is_err());
    assert!(check(&root, page, "../crates").is_ok());
}

#[test]
fn anchors_follow_githubs_slug_rules() {
    let page = "# Reliable\n## The `kit::storage` port: pools & schemas\n\
        ## Errors\n### Errors\n## [Linked](x.md) heading\n## 5-minute tour!\n\
        ```\n# not a heading\n```\n#hashtag\n";
    let found = anchors(page);
    for anchor in [
        "reliable",
        "the-kitstorage-port-pools--schemas",
        "errors",
        "errors-1",
        "linked-heading",
        "5-minute-tour",
    ] {
        assert!(found.contains(anchor), "{anchor} missing from {found:?}");
    }
    assert!(!found.contains("not-a-heading"));
    assert!(!found.contains("hashtag"));
}
