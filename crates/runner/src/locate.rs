//! Finds the line of a key path in YAML text, so that errors found after
//! parsing (type errors inside a config, unknown keys) name the line.

/// 1-based line of the last key of `path` (mapping keys; numeric segments
/// index sequences and are skipped), searched from `from_line` (1-based).
/// Falls back to the deepest key found.
pub(crate) fn line_of(text: &str, path: &[String], from_line: usize) -> Option<u64> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = from_line.saturating_sub(1);
    let mut min_indent = 0usize;
    let mut found = None;
    for seg in path {
        if seg.parse::<usize>().is_ok() {
            continue;
        }
        // A block key (`seg:` starting its line) wins over the same name
        // inside a flow mapping further up (`data: { classes: 4 }`).
        let mut hit = None;
        let mut flow_hit = None;
        for (i, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let t = trimmed.trim_start_matches("- ");
            if !trimmed.is_empty() && !trimmed.starts_with('#') && indent < min_indent && i > start
            {
                break; // left the enclosing block
            }
            if t.starts_with(&format!("{seg}:")) || t.starts_with(&format!("\"{seg}\":")) {
                hit = Some((i, indent));
                break;
            }
            // flow mappings: `{ seg: ... }`
            if flow_hit.is_none()
                && (t.contains(&format!("{{{seg}:"))
                    || t.contains(&format!(" {seg}:"))
                    || t.contains(&format!(",{seg}:")))
            {
                flow_hit = Some((i, indent));
            }
        }
        let hit = hit.or(flow_hit);
        match hit {
            Some((i, indent)) => {
                found = Some(i as u64 + 1);
                start = i;
                min_indent = indent + 1;
            }
            None => break,
        }
    }
    found
}

/// 1-based line of item `index` of the sequence whose key is on `key_line`:
/// the line of its `index`-th `- ` entry for a block sequence, the key's
/// own line for a flow sequence (`[a, b]`) or when the item is not found.
pub(crate) fn item_line(text: &str, key_line: u64, index: usize) -> u64 {
    let lines: Vec<&str> = text.lines().collect();
    let Some(key) = lines.get(key_line as usize - 1) else {
        return key_line;
    };
    let key_indent = key.len() - key.trim_start().len();
    let mut item_indent = None;
    let mut seen = 0;
    for (i, line) in lines.iter().enumerate().skip(key_line as usize) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent <= key_indent && !trimmed.starts_with("- ") || indent < key_indent {
            break; // left the sequence
        }
        if !trimmed.starts_with("- ") || *item_indent.get_or_insert(indent) != indent {
            continue;
        }
        if seen == index {
            return i as u64 + 1;
        }
        seen += 1;
    }
    key_line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys() {
        let text = "experiments:\n  - name: a\n    base:\n      method:\n        name: sgd\n        optimizer:\n          lr: x\n  - name: b\n    base:\n      lr: 3\n";
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            line_of(text, &p("experiments.0.base.method.optimizer.lr"), 1),
            Some(7)
        );
        assert_eq!(line_of(text, &p("base.lr"), 8), Some(10));
        assert_eq!(line_of(text, &p("base.nothing"), 1), Some(3));
    }

    #[test]
    fn finds_the_item_of_a_sequence() {
        let text = "axes:\n  method:\n    - { name: a }\n    # a comment\n    - name: b\n      lr: 1\n    - { name: c }\n  seed: [0, 1]\n";
        assert_eq!(item_line(text, 2, 0), 3);
        assert_eq!(item_line(text, 2, 1), 5);
        assert_eq!(item_line(text, 2, 2), 7);
        // Past the end, or a flow sequence: the key's line.
        assert_eq!(item_line(text, 2, 3), 2);
        assert_eq!(item_line(text, 8, 1), 8);
        // Items at the key's own indent (`key:\n- a`) count too.
        let text = "seed:\n- 0\n- 1\nother: 2\n";
        assert_eq!(item_line(text, 1, 1), 3);
    }
}
