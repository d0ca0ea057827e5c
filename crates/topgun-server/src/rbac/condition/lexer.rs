//! The condition tokenizer: characters to tokens with character positions.

use crate::rbac::error::{ConditionError, ConditionErrorKind};

/// A token and the character offset where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Token {
    pub(super) kind: Tok,
    pub(super) position: usize,
}

/// The kinds of token.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    /// A word: a root, a member name, `true`, `false`, `null` or `in`.
    Ident(String),
    /// A string literal, escapes resolved.
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A float literal (finite).
    Float(f64),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Not,
}

impl Tok {
    /// The token as written, for error messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Ident(name) => name.clone(),
            Tok::Str(s) => format!("{s:?}"),
            Tok::Int(i) => i.to_string(),
            Tok::Float(f) => f.to_string(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::LBracket => "[".into(),
            Tok::RBracket => "]".into(),
            Tok::Comma => ",".into(),
            Tok::Dot => ".".into(),
            Tok::Eq => "==".into(),
            Tok::Ne => "!=".into(),
            Tok::Lt => "<".into(),
            Tok::Le => "<=".into(),
            Tok::Gt => ">".into(),
            Tok::Ge => ">=".into(),
            Tok::And => "&&".into(),
            Tok::Or => "||".into(),
            Tok::Not => "!".into(),
        }
    }
}

/// Splits `source` into tokens.
pub(super) fn tokenize(source: &str) -> Result<Vec<Token>, ConditionError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let error = |kind| ConditionError {
            position: start,
            kind,
        };
        let next = chars.get(i + 1).copied();
        let (kind, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            ',' => (Tok::Comma, 1),
            '.' => (Tok::Dot, 1),
            '=' if next == Some('=') => (Tok::Eq, 2),
            '!' if next == Some('=') => (Tok::Ne, 2),
            '!' => (Tok::Not, 1),
            '<' if next == Some('=') => (Tok::Le, 2),
            '<' => (Tok::Lt, 1),
            '>' if next == Some('=') => (Tok::Ge, 2),
            '>' => (Tok::Gt, 1),
            '&' if next == Some('&') => (Tok::And, 2),
            '|' if next == Some('|') => (Tok::Or, 2),
            '"' => {
                let (s, len) = string(&chars[i..]).map_err(|(offset, kind)| ConditionError {
                    position: start + offset,
                    kind,
                })?;
                (Tok::Str(s), len)
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                number(&chars[i..]).ok_or_else(|| error(ConditionErrorKind::InvalidNumber))?
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = chars[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .count();
                (Tok::Ident(chars[i..i + len].iter().collect()), len)
            }
            c => return Err(error(ConditionErrorKind::UnexpectedChar(c))),
        };
        tokens.push(Token {
            kind,
            position: start,
        });
        i += len;
    }
    Ok(tokens)
}

/// A number at the start of `chars`: `-?digits(.digits)?([eE][+-]?digits)?`.
/// Integers that do not fit in an i64 and floats that are not finite are
/// refused (`None`), as is a number running straight into a letter.
fn number(chars: &[char]) -> Option<(Tok, usize)> {
    let digits = |from: usize| {
        chars[from..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let mut len = usize::from(chars.first() == Some(&'-'));
    len += digits(len);
    let mut float = false;
    if chars.get(len) == Some(&'.') && chars.get(len + 1).is_some_and(char::is_ascii_digit) {
        float = true;
        len += 1;
        len += digits(len);
    }
    if matches!(chars.get(len), Some('e' | 'E')) {
        float = true;
        len += 1;
        if matches!(chars.get(len), Some('+' | '-')) {
            len += 1;
        }
        let exponent = digits(len);
        if exponent == 0 {
            return None;
        }
        len += exponent;
    }
    if chars
        .get(len)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
    {
        return None;
    }
    let text: String = chars[..len].iter().collect();
    let tok = if float {
        let f: f64 = text.parse().ok()?;
        if !f.is_finite() {
            return None;
        }
        Tok::Float(f)
    } else {
        Tok::Int(text.parse().ok()?)
    };
    Some((tok, len))
}

/// A string literal at the start of `chars` (which begins with `"`), with
/// JSON's escapes. Errors carry an offset from the opening quote.
fn string(chars: &[char]) -> Result<(String, usize), (usize, ConditionErrorKind)> {
    let mut out = String::new();
    let mut i = 1;
    loop {
        match chars.get(i) {
            None => return Err((0, ConditionErrorKind::UnterminatedString)),
            Some('"') => return Ok((out, i + 1)),
            Some('\\') => {
                let escaped = match chars.get(i + 1) {
                    Some('"') => '"',
                    Some('\\') => '\\',
                    Some('/') => '/',
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some('b') => '\u{8}',
                    Some('f') => '\u{c}',
                    Some('u') => {
                        let (c, len) = unicode_escape(&chars[i..])
                            .ok_or((i, ConditionErrorKind::InvalidEscape))?;
                        out.push(c);
                        i += len;
                        continue;
                    }
                    None => return Err((0, ConditionErrorKind::UnterminatedString)),
                    Some(_) => return Err((i, ConditionErrorKind::InvalidEscape)),
                };
                out.push(escaped);
                i += 2;
            }
            Some(c) => {
                out.push(*c);
                i += 1;
            }
        }
    }
}

/// `\uXXXX`, or a surrogate pair `\uD83D\uDE00`, at the start of `chars`.
fn unicode_escape(chars: &[char]) -> Option<(char, usize)> {
    let hex = |from: usize| -> Option<u32> {
        let digits = chars.get(from..from + 4)?;
        digits
            .iter()
            .try_fold(0u32, |acc, c| Some(acc * 16 + c.to_digit(16)?))
    };
    let first = hex(2)?;
    if (0xD800..0xDC00).contains(&first) {
        if chars.get(6) != Some(&'\\') || chars.get(7) != Some(&'u') {
            return None;
        }
        let second = hex(8)?;
        if !(0xDC00..0xE000).contains(&second) {
            return None;
        }
        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
        return Some((char::from_u32(code)?, 12));
    }
    Some((char::from_u32(first)?, 6))
}
