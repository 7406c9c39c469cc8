//! The module graph of src/: no import circle between the top-level modules
//! (those src/lib.rs declares), and src/lib.rs's "Layout" true: it names
//! every top-level module, in groups listed from what everything uses up to
//! what uses everything, and no module imports one of a group listed after
//! its own. So `config` and what sits beside it at the bottom import
//! nothing above them.
//!
//! Read from the sources, with no tool: every file of the crate's module
//! tree (from src/lib.rs, following `mod name;`), without comments, strings
//! and `#[cfg(test)]` items (a unit test may use modules above its own, as
//! a crate's dev-dependencies may depend on it); each `crate::name` and each
//! `super::` that climbs to the crate root counts as a use of the top-level
//! module `name`.
//!
//! `MODULE_GRAPH_SRC=<dir>` reads another src/ instead (e.g. an older
//! checkout's, to see the circle it had).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Per top-level module, the ones it uses, each with one place where it
/// does (`file:line path`).
type Uses = BTreeMap<String, BTreeMap<String, String>>;

/// What the tests look at.
struct Graph {
    /// The top-level modules, as src/lib.rs declares them.
    modules: Vec<String>,
    uses: Uses,
}

fn src_dir() -> PathBuf {
    std::env::var_os("MODULE_GRAPH_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

fn graph() -> Graph {
    read_graph(&src_dir()).unwrap_or_else(|error| panic!("{error}"))
}

/// Rust source with comments, string and character literals blanked out
/// (each a space, or `""` for a string), newlines kept so that lines
/// still count.
fn strip(source: &str) -> String {
    let c: Vec<char> = source.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = String::with_capacity(source.len());
    // What was skipped from `from` to `end` (exclusive): its newlines.
    let skip = |out: &mut String, from: usize, end: usize| {
        out.extend(c[from..end.min(c.len())].iter().filter(|&&x| x == '\n'));
    };
    let mut i = 0;
    while i < c.len() {
        let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        if at(i) == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if at(i) == '/' && at(i + 1) == '*' {
            let (start, mut depth) = (i, 0);
            while i < c.len() {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
            skip(&mut out, start, i);
        } else if let Some(hashes) = raw_string_hashes(&c, i).filter(|_| !ident_before) {
            // r"..", r#".."#, br"..": ends at `"` and as many `#`.
            let start = i;
            i = c[i..]
                .iter()
                .position(|&x| x == '"')
                .map_or(c.len(), |p| i + p + 1);
            while i < c.len() && !(c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#')) {
                i += 1;
            }
            i += 1 + hashes;
            out.push_str("\"\"");
            skip(&mut out, start, i);
        } else if at(i) == '"' {
            let start = i;
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
            skip(&mut out, start, i);
        } else if at(i) == '\'' && at(i + 1) == '\\' {
            // '\n', '\'', '\u{..}': the escaped character, then up to `'`.
            i += 3;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else if at(i) == '\'' && at(i + 2) == '\'' && at(i + 1) != '\n' {
            i += 3;
            out.push(' ');
        } else {
            // Code, and the `'` of a lifetime.
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The number of `#` of a raw string literal starting at `i`, if one does.
fn raw_string_hashes(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if c.get(j) == Some(&'b') || c.get(j) == Some(&'c') {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = c[j..].iter().take_while(|&&x| x == '#').count();
    (c.get(j + hashes) == Some(&'"')).then_some(hashes)
}

/// A token of stripped source and its line.
#[derive(Debug, Clone, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

/// Identifiers, `::`, `#[` and `#![`, and every other character alone.
fn tokens(stripped: &str) -> Vec<Token> {
    let c: Vec<char> = stripped.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let start = i;
        if c[i] == '\n' {
            line += 1;
            i += 1;
            continue;
        } else if c[i].is_whitespace() {
            i += 1;
            continue;
        } else if c[i].is_alphabetic() || c[i] == '_' {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else if matches!((c[i], c.get(i + 1)), (':', Some(':')) | ('#', Some('['))) {
            i += 2;
        } else if c[i] == '#' && c.get(i + 1) == Some(&'!') && c.get(i + 2) == Some(&'[') {
            i += 3;
        } else {
            i += 1;
        }
        out.push(Token {
            text: c[start..i].iter().collect(),
            line,
        });
    }
    out
}

fn is_open(t: &str) -> bool {
    matches!(t, "{" | "[" | "(" | "#[" | "#![")
}

fn is_close(t: &str) -> bool {
    matches!(t, "}" | "]" | ")")
}

/// The index past the bracket group opening at `i`.
fn past_group(t: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < t.len() {
        if is_open(&t[i].text) {
            depth += 1;
        } else if is_close(&t[i].text) {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    i
}

/// The index past the item starting at `i`: its `;`, or its body's `}`.
fn past_item(t: &[Token], mut i: usize) -> usize {
    while i < t.len() {
        match t[i].text.as_str() {
            ";" => return i + 1,
            "{" => return past_group(t, i),
            x if is_open(x) => i = past_group(t, i),
            _ => i += 1,
        }
    }
    i
}

/// The names a path continues with at `i`: `name`, or each first name of
/// a `{a::b, c}` group.
fn names_at(t: &[Token], i: usize) -> Vec<String> {
    match t.get(i).map(|t| t.text.as_str()) {
        Some("{") => {
            let mut names = Vec::new();
            let mut depth = 0;
            let mut previous = "";
            for token in &t[i..past_group(t, i)] {
                match token.text.as_str() {
                    "{" => depth += 1,
                    "}" => depth -= 1,
                    name if depth == 1 && matches!(previous, "{" | ",") => {
                        names.push(name.to_owned());
                    }
                    _ => {}
                }
                previous = token.text.as_str();
            }
            names
        }
        Some(name) => vec![name.to_owned()],
        None => Vec::new(),
    }
}

/// A path as written from `i` on (`crate::a::b`, `crate::{a, b}`), for
/// messages.
fn path_at(t: &[Token], i: usize) -> String {
    let is_part = |token: &&Token| {
        token.text == "::"
            || token
                .text
                .starts_with(|c: char| c.is_alphabetic() || c == '_')
    };
    let end = i + t[i..].iter().take_while(is_part).count();
    let end = match t.get(end) {
        Some(group) if group.text == "{" => past_group(t, end),
        _ => end,
    };
    t[i..end]
        .iter()
        .map(|t| if t.text == "," { ", " } else { t.text.as_str() })
        .collect()
}

/// What one file declares and uses.
#[derive(Debug, Default)]
struct FileFacts {
    /// `mod name;` (not `#[cfg(test)]`), with the inline modules it is in.
    children: Vec<Vec<String>>,
    /// Top-level module used, with the line and the path written.
    uses: Vec<(String, usize, String)>,
}

/// Reads one file of module `module` (its path from the crate root).
fn read_file(source: &str, module: &[String]) -> Result<FileFacts, String> {
    let t = tokens(&strip(source));
    let mut facts = FileFacts::default();
    // Inline `mod name {`: its name and the brace depth it opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut path_attribute = false;
    let mut i = 0;
    while i < t.len() {
        let text = t[i].text.as_str();
        let next = t.get(i + 1).map(|n| n.text.as_str());
        match text {
            "#[" => {
                let end = past_group(&t, i);
                let attribute: Vec<&str> =
                    t[i + 1..end - 1].iter().map(|t| t.text.as_str()).collect();
                i = end;
                if attribute == ["cfg", "(", "test", ")"] {
                    while t.get(i).is_some_and(|t| t.text == "#[") {
                        i = past_group(&t, i);
                    }
                    i = past_item(&t, i);
                    path_attribute = false;
                } else if attribute.first() == Some(&"path") {
                    path_attribute = true;
                }
                continue;
            }
            "#![" => {
                i = past_group(&t, i);
                continue;
            }
            "mod" if matches!(t.get(i + 2).map(|t| t.text.as_str()), Some(";" | "{")) => {
                let name = t[i + 1].text.clone();
                if t[i + 2].text == ";" {
                    if path_attribute {
                        return Err(format!(
                            "`#[path]` on `mod {name};` is not followed by this test"
                        ));
                    }
                    let mut child: Vec<String> = inline.iter().map(|(n, _)| n.clone()).collect();
                    child.push(name);
                    facts.children.push(child);
                } else {
                    inline.push((name, depth));
                    depth += 1;
                }
                path_attribute = false;
                i += 3;
                continue;
            }
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            ";" => path_attribute = false,
            "crate" if next == Some("::") && (i == 0 || t[i - 1].text != "$") => {
                for name in names_at(&t, i + 2) {
                    facts.uses.push((name, t[i].line, path_at(&t, i)));
                }
            }
            "super" if next == Some("::") && (i == 0 || t[i - 1].text != "::") => {
                let mut here: Vec<String> = module.to_vec();
                here.extend(inline.iter().map(|(n, _)| n.clone()));
                let mut j = i;
                while t.get(j).is_some_and(|t| t.text == "super")
                    && t.get(j + 1).is_some_and(|t| t.text == "::")
                {
                    if here.pop().is_none() {
                        return Err(format!(
                            "line {}: `super::` above the crate root",
                            t[i].line
                        ));
                    }
                    j += 2;
                }
                let names = match here.first() {
                    Some(top) => vec![top.clone()],
                    None => names_at(&t, j),
                };
                for name in names {
                    facts.uses.push((name, t[i].line, path_at(&t, i)));
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(facts)
}

/// The graph of the crate whose root is `src/lib.rs`.
fn read_graph(src: &Path) -> Result<Graph, String> {
    let read =
        |path: &Path| std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()));
    let lib = src.join("lib.rs");
    let root = read_file(&read(&lib)?, &[]).map_err(|e| format!("{}: {e}", lib.display()))?;
    let modules: Vec<String> = root.children.iter().map(|c| c.join("::")).collect();
    let known: BTreeSet<&String> = modules.iter().collect();
    let mut uses = Uses::new();
    // (module path, the directory its `mod name;` files are in)
    let mut queue: Vec<(Vec<String>, PathBuf)> = Vec::new();
    for child in &root.children {
        queue.push((child.clone(), src.to_path_buf()));
    }
    while let Some((module, dir)) = queue.pop() {
        let name = module.last().cloned().unwrap_or_default();
        let flat = dir.join(format!("{name}.rs"));
        let file = if flat.is_file() {
            flat
        } else {
            dir.join(&name).join("mod.rs")
        };
        let facts =
            read_file(&read(&file)?, &module).map_err(|e| format!("{}: {e}", file.display()))?;
        let top = &module[0];
        let shown = file
            .strip_prefix(src.parent().unwrap_or(src))
            .unwrap_or(&file);
        for (used, line, path) in facts.uses {
            if &used != top && known.contains(&used) {
                uses.entry(top.clone())
                    .or_default()
                    .entry(used)
                    .or_insert_with(|| format!("{}:{line} {path}", shown.display()));
            }
        }
        for child in facts.children {
            let mut path = module.clone();
            path.extend(child.iter().cloned());
            let mut child_dir = dir.join(&name);
            for inline in &child[..child.len() - 1] {
                child_dir.push(inline);
            }
            queue.push((path, child_dir));
        }
    }
    Ok(Graph { modules, uses })
}

/// An import circle, as `a -> b -> a` with where each step is written;
/// `None` when there is none.
fn find_circle(uses: &Uses) -> Option<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        uses: &'a Uses,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        marks.insert(node, Mark::Open);
        stack.push(node);
        for next in uses.get(node).into_iter().flat_map(|m| m.keys()) {
            match marks.get(next.as_str()) {
                Some(Mark::Open) => {
                    let from = stack.iter().position(|n| *n == next.as_str())?;
                    let mut circle = stack[from..].to_vec();
                    circle.push(next.as_str());
                    return Some(circle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(circle) = visit(next.as_str(), uses, marks, stack) {
                        return Some(circle);
                    }
                }
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in uses.keys() {
        if marks.contains_key(node.as_str()) {
            continue;
        }
        if let Some(circle) = visit(node, uses, &mut marks, &mut Vec::new()) {
            let mut text = circle.join(" -> ");
            for step in circle.windows(2) {
                text.push_str(&format!(
                    "\n  {} -> {}: {}",
                    step[0], step[1], uses[step[0]][step[1]]
                ));
            }
            return Some(text);
        }
    }
    None
}

/// src/lib.rs's "Layout": its groups in order (each starts at a line of
/// its own that ends in `:`), each with the top-level modules it is the
/// first to name as [`name`].
fn layout(lib: &str) -> Vec<(String, Vec<String>)> {
    let doc = lib
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line));
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut named = BTreeSet::new();
    let mut inside = false;
    for line in doc {
        if line.starts_with('#') {
            inside = line == "# Layout";
            continue;
        }
        if !inside {
            continue;
        }
        if line.ends_with(':') && !line.starts_with(['-', ' ']) {
            groups.push((line.trim_end_matches(':').to_owned(), Vec::new()));
            continue;
        }
        let Some((_, modules)) = groups.last_mut() else {
            continue;
        };
        for piece in line.split("[`").skip(1) {
            let Some((name, _)) = piece.split_once("`]") else {
                continue;
            };
            if !name.contains("::") && named.insert(name.to_owned()) {
                modules.push(name.to_owned());
            }
        }
    }
    groups
}

#[test]
fn no_import_circle_between_top_level_modules() {
    let graph = graph();
    assert!(
        graph.modules.len() > 10,
        "src/lib.rs declares {:?}",
        graph.modules
    );
    if let Some(circle) = find_circle(&graph.uses) {
        panic!("an import circle between top-level modules of src/: {circle}");
    }
}

#[test]
fn the_layout_in_lib_rs_names_every_module_and_none_uses_a_later_group() {
    let graph = graph();
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).expect("src/lib.rs");
    let groups = layout(&lib);
    assert!(
        groups.len() >= 3,
        "no groups found in src/lib.rs's # Layout: {groups:?}"
    );
    let group_of: BTreeMap<&str, usize> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, (_, modules))| modules.iter().map(move |m| (m.as_str(), g)))
        .collect();
    let missing: Vec<&String> = graph
        .modules
        .iter()
        .filter(|m| !group_of.contains_key(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "src/lib.rs's # Layout does not name {missing:?}"
    );
    let mut wrong = Vec::new();
    for (from, used) in &graph.uses {
        for (to, place) in used {
            let (a, b) = (group_of[from.as_str()], group_of[to.as_str()]);
            if b > a {
                wrong.push(format!(
                    "{from} (\"{}\") uses {to} (\"{}\", listed after it): {place}",
                    groups[a].0, groups[b].0
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "src/lib.rs's # Layout lists its groups from what everything uses up, but:\n{}",
        wrong.join("\n")
    );
}

/// The reading itself, on a made-up crate.
mod reading {
    use super::*;

    /// The graph of a crate of `files` (under `src/`, beside `LIB`).
    fn graph_of(files: &[(&str, &str)]) -> Graph {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        for (path, text) in [("lib.rs", LIB)].iter().chain(files) {
            let path = src.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        read_graph(&src).unwrap_or_else(|error| panic!("{error}"))
    }

    const LIB: &str = "//! # Layout\n//!\n//! Bottom:\n//! - [`a`]: a, not [`b::X`].\n//!\n\
                       //! Top:\n//! - [`b`] and [`c`], again [`a`].\n\npub mod a;\npub mod b;\nmod c;\n";

    #[test]
    fn a_circle_is_named_with_where_each_step_is_written() {
        let graph = graph_of(&[
            ("a/mod.rs", "mod inner;\n"),
            ("a/inner.rs", "fn f() { super::super::c::g(); }\n"),
            ("b.rs", "use crate::{a, c::g};\n"),
            ("c.rs", "pub fn g() { crate::b::h() }\n"),
        ]);
        assert_eq!(graph.modules, ["a", "b", "c"]);
        let circle = find_circle(&graph.uses).expect("a circle");
        assert!(circle.starts_with("a -> c -> b -> a\n"), "{circle}");
        assert!(
            circle.contains("c -> b: src/c.rs:1 crate::b::h"),
            "{circle}"
        );
        assert!(
            circle.contains("a -> c: src/a/inner.rs:1 super::super::c::g"),
            "{circle}"
        );
        assert!(
            circle.contains("b -> a: src/b.rs:1 crate::{a, c::g}"),
            "{circle}"
        );
        let groups = layout(LIB);
        assert_eq!(
            groups,
            [
                ("Bottom".to_owned(), vec!["a".to_owned()]),
                ("Top".to_owned(), vec!["b".to_owned(), "c".to_owned()]),
            ]
        );
    }

    #[test]
    fn comments_strings_and_unit_tests_are_no_uses() {
        let a = concat!(
            "// crate::b\n/* /* crate::b */ crate::c */\n",
            "const S: &str = \"crate::b \\\" crate::c\";\n",
            "const R: &str = r#\"crate::b \" crate::c\"#;\n",
            "const Q: char = '\"'; const E: char = '\\''; fn l<'x>(s: &'x str) {}\n",
            "macro_rules! m { () => { $crate::b::f() } }\n",
            "#[cfg(test)]\n#[path = \"elsewhere.rs\"]\nmod tests;\n",
            "#[cfg(test)]\nmod more { #[test] fn t() { crate::b::f(); } }\n",
            "mod inline { fn f() { super::g(); } }\n",
            "pub(crate) fn g() { crate::c::h(); }\n",
        );
        let graph = graph_of(&[("a.rs", a), ("b.rs", ""), ("c.rs", "")]);
        let used: Vec<(&str, &str)> = graph
            .uses
            .iter()
            .flat_map(|(from, to)| to.keys().map(move |to| (from.as_str(), to.as_str())))
            .collect();
        assert_eq!(used, [("a", "c")]);
        assert_eq!(graph.uses["a"]["c"], "src/a.rs:13 crate::c::h");
        assert_eq!(find_circle(&graph.uses), None);
    }
}
