//! The short spec-string syntax shared by the CLI and the TOML configs:
//! `name`, `name(value)` or `name(key=value, key=value, ...)`, where a value may itself be a
//! nested spec (`per_round(lomax(shape=2))`). Parsing yields a [`Spec`]; the caller checks the
//! name and keys so that every error names the bad piece.

use crate::error::{Error, Result, shown};

/// A parsed `name(args...)` spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// What kind of spec this was parsed as (for error messages), e.g. "compute time".
    pub what: String,
    /// The whole input text (for error messages).
    pub input: String,
    /// The lower-cased name before the parenthesis.
    pub name: String,
    /// Arguments in order: `(Some(key), value)` for `key=value`, `(None, value)` for positional.
    pub args: Vec<(Option<String>, String)>,
}

impl Spec {
    /// Parses `input`; `what` says what the spec describes, for error messages.
    pub fn parse(what: &str, input: &str) -> Result<Spec> {
        let err = |reason: &str| Error::parse(what, input, reason);
        let text = input.trim();
        if text.is_empty() {
            return Err(err("empty spec"));
        }
        let (name, rest) = match text.find('(') {
            None => (text, ""),
            Some(open) => {
                if !text.ends_with(')') {
                    let trailing = text.rfind(')').filter(|&close| close > open);
                    return Err(err(if trailing.is_some() {
                        "text after the closing ')'"
                    } else {
                        "missing closing ')'"
                    }));
                }
                (&text[..open], &text[open + 1..text.len() - 1])
            }
        };
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(err("expected a name such as exp(mean=1)"));
        }
        let mut args = Vec::new();
        for part in split_top_level(rest).map_err(|r| err(&r))? {
            let part = part.trim();
            if part.is_empty() {
                if rest.trim().is_empty() {
                    break;
                }
                return Err(err("empty argument"));
            }
            match top_level_eq(part) {
                Some(eq) => {
                    let key = part[..eq].trim().to_ascii_lowercase();
                    if key.is_empty() {
                        return Err(err("empty key before '='"));
                    }
                    if args.iter().any(|(k, _): &(Option<String>, String)| k.as_deref() == Some(key.as_str())) {
                        return Err(err(&format!("key '{key}' given twice")));
                    }
                    args.push((Some(key), part[eq + 1..].trim().to_string()));
                }
                None => args.push((None, part.to_string())),
            }
        }
        Ok(Spec { what: what.to_string(), input: input.to_string(), name: name.replace('-', "_"), args })
    }

    /// An error about this spec.
    pub fn error(&self, reason: impl Into<String>) -> Error {
        Error::parse(&self.what, &self.input, reason)
    }

    /// Fails unless every keyed argument is in `allowed` and positional arguments number at most
    /// `max_positional`.
    pub fn check_keys(&self, allowed: &[&str], max_positional: usize) -> Result<()> {
        let mut positional = 0;
        for (key, _) in &self.args {
            match key {
                Some(k) if !allowed.contains(&k.as_str()) => {
                    return Err(self.error(format!("unknown key '{k}' (expected one of: {})", allowed.join(", "))));
                }
                None => positional += 1,
                _ => {}
            }
        }
        if positional > max_positional {
            return Err(self.error(match max_positional {
                0 if allowed.is_empty() => "takes no arguments".to_string(),
                0 => format!("takes only key=value arguments (keys: {})", allowed.join(", ")),
                n => format!("expected at most {n} positional argument(s)"),
            }));
        }
        Ok(())
    }

    /// The raw text of argument `key`, or of positional argument number `position`.
    pub fn raw(&self, key: &str, position: Option<usize>) -> Option<&str> {
        if let Some((_, v)) = self.args.iter().find(|(k, _)| k.as_deref() == Some(key)) {
            return Some(v);
        }
        let index = position?;
        self.args.iter().filter(|(k, _)| k.is_none()).nth(index).map(|(_, v)| v.as_str())
    }

    /// Argument `key` (or positional `position`) as a number, if present.
    pub fn number(&self, key: &str, position: Option<usize>) -> Result<Option<f64>> {
        let keyed = self.args.iter().any(|(k, _)| k.as_deref() == Some(key));
        if keyed && position.is_some_and(|i| self.args.iter().filter(|(k, _)| k.is_none()).nth(i).is_some()) {
            return Err(self.error(format!("{key} given both by name and by position")));
        }
        match self.raw(key, position) {
            None => Ok(None),
            Some(text) => {
                parse_number(text).map(Some).ok_or_else(|| self.error(format!("{key} = '{text}' is not a number")))
            }
        }
    }

    /// Required numeric argument.
    pub fn required(&self, key: &str, position: Option<usize>) -> Result<f64> {
        self.number(key, position)?.ok_or_else(|| self.error(format!("missing {key}")))
    }

    /// All positional arguments as numbers (for lists such as `means(1, 2, 3)`).
    pub fn numbers(&self) -> Result<Vec<f64>> {
        self.args
            .iter()
            .map(|(k, v)| match k {
                Some(k) => Err(self.error(format!("unexpected key '{k}' in a list"))),
                None => parse_number(v).ok_or_else(|| self.error(format!("'{v}' is not a number"))),
            })
            .collect()
    }
}

/// What a numeric parameter of a time model must be.
#[derive(Clone, Copy, Debug)]
pub enum Bound {
    /// Any finite number.
    Finite,
    /// 0, or a finite positive number of normal size.
    NonNegative,
    /// A finite positive number of normal size.
    Positive,
}

/// Checks `value` against `bound`; the error reads "`value` must be ...", for the caller to
/// prefix with the parameter's name. A subnormal positive value (below 2.2e-308) is rejected:
/// it keeps too few significant bits for exact simulated times.
pub fn check_bound(value: f64, bound: Bound) -> std::result::Result<(), String> {
    let subnormal = value > 0.0 && value < f64::MIN_POSITIVE;
    let ok = value.is_finite()
        && match bound {
            Bound::Finite => true,
            Bound::NonNegative => value >= 0.0 && !subnormal,
            Bound::Positive => value > 0.0 && !subnormal,
        };
    if ok {
        return Ok(());
    }
    let need = match bound {
        Bound::Finite => "a finite number",
        Bound::NonNegative if subnormal => {
            "0 or of normal size (at least 2.2e-308; a subnormal number has too few significant bits)"
        }
        Bound::Positive if subnormal => {
            "of normal size (at least 2.2e-308; a subnormal number has too few significant bits)"
        }
        Bound::NonNegative => "a finite number >= 0",
        Bound::Positive => "a finite number > 0",
    };
    Err(format!("{} must be {need}", shown(value)))
}

/// Parses a float, accepting `inf`/`nan` spellings so that validation (not parsing) rejects them
/// with a message naming the parameter.
pub fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok()
}

fn split_top_level(text: &str) -> std::result::Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')'".into());
                }
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn top_level_eq(text: &str) -> Option<usize> {
    let mut depth = 0i32;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '=' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_keys_and_nesting() {
        let s = Spec::parse("t", "Exp(mean=2.5)").unwrap();
        assert_eq!(s.name, "exp");
        assert_eq!(s.required("mean", None).unwrap(), 2.5);
        let s = Spec::parse("t", "per_round(lomax(shape=2, scale=1))").unwrap();
        assert_eq!(s.raw("dist", Some(0)), Some("lomax(shape=2, scale=1)"));
        let s = Spec::parse("t", "const").unwrap();
        assert!(s.args.is_empty());
        let s = Spec::parse("t", "means(1, 2,3)").unwrap();
        assert_eq!(s.numbers().unwrap(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn bounds() {
        assert!(check_bound(0.0, Bound::NonNegative).is_ok());
        assert!(check_bound(f64::MIN_POSITIVE, Bound::Positive).is_ok());
        assert!(check_bound(-3.0, Bound::Finite).is_ok());
        assert_eq!(check_bound(0.0, Bound::Positive).unwrap_err(), "0 must be a finite number > 0");
        assert_eq!(check_bound(f64::INFINITY, Bound::Finite).unwrap_err(), "inf must be a finite number");
        assert!(check_bound(1e-310, Bound::Positive).unwrap_err().starts_with("1e-310 must be of normal size"));
        assert!(check_bound(1e-310, Bound::NonNegative).unwrap_err().contains("0 or of normal size"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "exp(mean=1", "exp(mean=1))", "(x)", "exp(,)", "exp(=3)"] {
            assert!(Spec::parse("t", bad).is_err(), "{bad}");
        }
        let e = Spec::parse("t", "exp(mean=1, Mean=-5)").unwrap_err().to_string();
        assert!(e.contains("key 'mean' given twice"), "{e}");
        let s = Spec::parse("t", "const(1, value=2)").unwrap();
        assert!(s.number("value", Some(0)).is_err());
        let s = Spec::parse("t", "exp(mean=abc)").unwrap();
        assert!(s.required("mean", None).is_err());
    }
}
