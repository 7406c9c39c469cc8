//! `${key}` / `${section:key}` / `$$` exactly as Python's
//! `configparser.ExtendedInterpolation` resolves them: `${key}` is looked up
//! in the section being read (then `[DEFAULT]`), `${section:key}` in that
//! section (then `[DEFAULT]`), a referenced value is itself interpolated in
//! the context of the section it came from, and more than
//! [`MAX_DEPTH`] nested references is an error (this is how a reference
//! cycle is caught, as in Python).

use super::raw::RawConfig;

/// Python's `configparser.MAX_INTERPOLATION_DEPTH`.
pub const MAX_DEPTH: usize = 10;

/// Why a value could not be interpolated (the caller adds section, option
/// and value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpolationError {
    /// `${...}` names an option or section that does not exist.
    Missing(String),
    /// References nest deeper than [`MAX_DEPTH`] (usually a cycle).
    TooDeep(String),
    /// `$` not followed by `$` or `{`, an unclosed `${`, or `a:b:c`.
    Syntax(String),
}

impl std::fmt::Display for InterpolationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InterpolationError::Missing(reference) => {
                write!(
                    f,
                    "bad interpolation: '${{{reference}}}' refers to an option that does not exist"
                )
            }
            InterpolationError::TooDeep(reference) => write!(
                f,
                "bad interpolation: more than {MAX_DEPTH} nested references at '${{{reference}}}' (a reference cycle?)"
            ),
            InterpolationError::Syntax(reason) => write!(f, "bad interpolation: {reason}"),
        }
    }
}

/// Interpolates `value`, read in `section`.
pub fn interpolate(
    raw: &RawConfig,
    section: &str,
    value: &str,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(value.len());
    expand(raw, section, value, 1, &mut out)?;
    Ok(out)
}

fn expand(
    raw: &RawConfig,
    section: &str,
    mut rest: &str,
    depth: usize,
    out: &mut String,
) -> Result<(), InterpolationError> {
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar..];
        match rest.as_bytes().get(1) {
            Some(b'$') => {
                out.push('$');
                rest = &rest[2..];
            }
            Some(b'{') => {
                let Some(close) = rest.find('}') else {
                    return Err(InterpolationError::Syntax(format!(
                        "unclosed reference '{rest}'"
                    )));
                };
                let reference = &rest[2..close];
                rest = &rest[close + 1..];
                if reference.is_empty() {
                    return Err(InterpolationError::Syntax(
                        "empty reference '${}'".to_owned(),
                    ));
                }
                let (target_section, key) = match reference.split(':').collect::<Vec<_>>()[..] {
                    [key] => (section, key),
                    [target, key] => (target, key),
                    _ => {
                        return Err(InterpolationError::Syntax(format!(
                            "more than one ':' in '${{{reference}}}'"
                        )));
                    }
                };
                let key = key.to_lowercase();
                let found = raw
                    .raw_get(target_section, &key)
                    .ok_or_else(|| InterpolationError::Missing(reference.to_owned()))?;
                if found.contains('$') {
                    if depth >= MAX_DEPTH {
                        return Err(InterpolationError::TooDeep(reference.to_owned()));
                    }
                    expand(raw, target_section, found, depth + 1, out)?;
                } else {
                    out.push_str(found);
                }
            }
            _ => {
                return Err(InterpolationError::Syntax(format!(
                    "'$' must be followed by '$' or '{{', found '{rest}' (write '$$' for a literal '$')"
                )));
            }
        }
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawConfig {
        let mut raw = RawConfig::default();
        raw.read_str(text, "<test>").expect("test config parses");
        raw
    }

    #[test]
    fn plain_dollar_escape_and_references() {
        let raw =
            raw("[DEFAULT]\nroot = /r\n[a]\nx = ${root}/x\ny = ${b:z}$$\n[b]\nz = ${x}\nx = bx\n");
        assert_eq!(interpolate(&raw, "a", "${root}/x").as_deref(), Ok("/r/x"));
        // ${b:z} is interpolated in b's context, where x is "bx".
        assert_eq!(interpolate(&raw, "a", "${b:z}$$").as_deref(), Ok("bx$"));
    }

    #[test]
    fn cycle_is_too_deep() {
        let raw = raw("[a]\nx = ${y}\ny = ${x}\n");
        assert!(matches!(
            interpolate(&raw, "a", "${x}"),
            Err(InterpolationError::TooDeep(_))
        ));
    }

    #[test]
    fn ten_levels_are_fine_eleven_are_not() {
        let mut text = String::from("[a]\nv0 = end\n");
        for i in 1..=11 {
            text.push_str(&format!("v{i} = ${{v{}}}\n", i - 1));
        }
        let raw = raw(&text);
        // interpolate(value of v10) is Python's get(v10): fine; get(v11) is too deep.
        assert_eq!(interpolate(&raw, "a", "${v9}").as_deref(), Ok("end"));
        assert!(interpolate(&raw, "a", "${v10}").is_err());
    }
}
