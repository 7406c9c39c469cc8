//! "Where we differ from the original": the README's list, so that the man
//! page and the README say the same thing and only one of them is edited.

/// The README, whose differences section the man page repeats.
const README: &str = include_str!("../../README.md");

/// The heading of that section in the README.
const HEADING: &str = "### Where we differ from the original, deliberately";

/// One difference: text, with `` `code` `` spans kept as written.
pub type Difference = String;

/// The README's list of differences, each item joined into one line.
pub fn from_readme() -> Vec<Difference> {
    list_after(README, HEADING)
}

/// The `- ` items of the list that follows `heading`, up to the next heading.
fn list_after(markdown: &str, heading: &str) -> Vec<Difference> {
    let mut items: Vec<Difference> = Vec::new();
    let mut lines = markdown
        .lines()
        .skip_while(|line| line.trim_end() != heading);
    lines.next();
    for line in lines {
        if line.starts_with('#') {
            break;
        }
        if let Some(first) = line.strip_prefix("- ") {
            items.push(first.trim().to_owned());
        } else if let (Some(item), true) = (items.last_mut(), line.starts_with("  ")) {
            item.push(' ');
            item.push_str(line.trim());
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_section_is_found_and_every_item_is_whole() {
        let items = from_readme();
        assert!(
            items.len() >= 10,
            "only {} differences found under {HEADING:?}",
            items.len()
        );
        for item in &items {
            assert_eq!(
                item.matches('`').count() % 2,
                0,
                "unbalanced code span: {item}"
            );
            // The man page renders code spans only; a link or emphasis would
            // show its markup.
            assert!(!item.contains("]("), "a link in: {item}");
            assert!(!item.contains("**"), "emphasis in: {item}");
        }
    }

    #[test]
    fn items_end_at_the_next_heading_and_join_their_lines() {
        let text = "## A\n- no\n### D\n\n- one\n  more\n- two\n## Next\n- not this\n";
        assert_eq!(list_after(text, "### D"), ["one more", "two"]);
    }
}
