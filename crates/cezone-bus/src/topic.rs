//! RabbitMQ topic matching, for the in-process bus: words are separated by '.', `*` matches
//! exactly one word and `#` matches zero or more words.

/// Whether `routing_key` matches the binding `pattern`.
pub fn matches(pattern: &str, routing_key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    match_words(&pattern, &key)
}

fn match_words(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        // `#` swallows zero words, or one word and stays in place.
        Some((&"#", rest)) => {
            match_words(rest, key) || (!key.is_empty() && match_words(pattern, &key[1..]))
        }
        Some((&"*", rest)) => !key.is_empty() && match_words(rest, &key[1..]),
        Some((word, rest)) => key.first() == Some(word) && match_words(rest, &key[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn rabbitmq_rules() {
        assert!(matches("evidence.*", "evidence.reviewed"));
        assert!(!matches("evidence.*", "evidence"));
        assert!(!matches("evidence.*", "evidence.file.stored"));
        assert!(matches("evidence.#", "evidence"));
        assert!(matches("evidence.#", "evidence.file.stored"));
        assert!(matches("#", "anything.at.all"));
        assert!(matches("#", ""));
        assert!(matches("*.reviewed", "evidence.reviewed"));
        assert!(!matches("*.reviewed", "evidence.submitted"));
        assert!(matches("a.#.z", "a.z"));
        assert!(matches("a.#.z", "a.b.c.z"));
        assert!(!matches("a.#.z", "a.b.c"));
        assert!(matches("#.z", "z"));
        assert!(matches("a.*.#", "a.b"));
        assert!(!matches("a.*.#", "a"));
        assert!(matches("scores.recomputed", "scores.recomputed"));
        assert!(!matches("scores.recomputed", "scores.recomputed.x"));
        assert!(!matches("scores", "scoresx"));
    }
}
