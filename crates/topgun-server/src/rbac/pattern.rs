//! Map patterns: `:`-separated segments with `*`, `**` and claim interpolation, compiled once and matched without allocating.

use std::fmt::{self, Write as _};

use serde_json::Value as Json;

use super::error::{PatternError, PatternErrorKind};
use crate::authz::{Principal, RESERVED_MAP_PREFIX};

/// A compiled map pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pattern {
    segments: Box<[Segment]>,
}

/// One segment of a pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Segment {
    /// `*`: exactly one map segment, whatever it is.
    One,
    /// `**`: any number of map segments, including none.
    Many,
    /// Plain text, compared for equality.
    Literal(Box<str>),
    /// Text with interpolations; the concatenation must equal the map
    /// segment exactly.
    Interpolated(Box<[Part]>),
}

/// A piece of an interpolated segment.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Part {
    /// Plain text.
    Literal(Box<str>),
    /// `{sub}`: the principal's subject.
    Sub,
    /// `{claims.a.b}`: a claim, by dotted path.
    Claim(Box<[Box<str>]>),
}

impl Pattern {
    /// Parses and validates a pattern.
    pub(crate) fn parse(source: &str) -> Result<Pattern, PatternError> {
        if source.is_empty() {
            return Err(PatternError {
                position: 0,
                kind: PatternErrorKind::Empty,
            });
        }
        let mut segments = Vec::new();
        let mut position = 0;
        for text in source.split(':') {
            segments.push(parse_segment(text, position)?);
            position += text.chars().count() + 1;
        }
        if let Some(Segment::Literal(first)) = segments.first() {
            if first.starts_with(RESERVED_MAP_PREFIX) {
                return Err(PatternError {
                    position: 0,
                    kind: PatternErrorKind::Reserved,
                });
            }
        }
        Ok(Pattern {
            segments: segments.into_boxed_slice(),
        })
    }

    /// What the first segment says about the maps this pattern can match:
    /// the key under which the policy set indexes it.
    pub(crate) fn lead(&self) -> Lead<'_> {
        match self.segments.first() {
            Some(Segment::Literal(text)) => Lead::Literal(text),
            Some(segment @ Segment::Interpolated(_)) => Lead::Interpolated(segment),
            _ => Lead::Any,
        }
    }

    /// The second segment when it is plain text and the first is not `**`:
    /// the first then takes exactly one map segment and no `**` comes
    /// before the second, so every map this pattern matches has this text
    /// as its second segment.
    pub(crate) fn second_literal(&self) -> Option<&str> {
        match &*self.segments {
            [Segment::Many, ..] => None,
            [_, Segment::Literal(text), ..] => Some(text),
            _ => None,
        }
    }

    /// Whether `map` matches this pattern for `principal`.
    ///
    /// The classic wildcard algorithm, over segments: `**` first matches
    /// nothing, and on a later mismatch the most recent `**` takes one more
    /// segment. Every other segment kind matches exactly one map segment, so
    /// this is exact and runs in O(pattern × map) without allocating.
    pub(crate) fn matches(&self, map: &str, principal: &Principal) -> bool {
        let segments = &self.segments;
        let mut pi = 0;
        let mut rest = map.split(':');
        // The pattern index after the latest `**`, and where in the map that
        // `**` currently stops.
        let mut backtrack: Option<(usize, std::str::Split<'_, char>)> = None;
        loop {
            let before = rest.clone();
            let Some(segment) = rest.next() else {
                return segments[pi..].iter().all(|s| matches!(s, Segment::Many));
            };
            match segments.get(pi) {
                Some(Segment::Many) => {
                    backtrack = Some((pi + 1, before.clone()));
                    pi += 1;
                    rest = before;
                    continue;
                }
                Some(s) if s.matches_one(segment, principal) => {
                    pi += 1;
                    continue;
                }
                _ => {}
            }
            match &mut backtrack {
                Some((after_many, stop)) => {
                    // The `**` swallows one more segment, and matching
                    // resumes right after it.
                    stop.next();
                    pi = *after_many;
                    rest = stop.clone();
                }
                None => return false,
            }
        }
    }
}

/// A pattern's first segment, as the policy set's index sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lead<'a> {
    /// Plain text: the map's first segment must equal it.
    Literal(&'a str),
    /// Text with interpolations: the map's first segment must equal it
    /// once interpolated for the principal.
    Interpolated(&'a Segment),
    /// `*` or `**`: any map may match.
    Any,
}

impl Segment {
    /// Whether this (non-`**`) segment matches one map segment.
    pub(crate) fn matches_one(&self, segment: &str, principal: &Principal) -> bool {
        match self {
            Segment::One => true,
            Segment::Many => false,
            Segment::Literal(text) => **text == *segment,
            Segment::Interpolated(parts) => {
                let mut rest = segment;
                for part in parts.iter() {
                    let after = match part {
                        Part::Literal(text) => rest.strip_prefix(&**text),
                        Part::Sub => strip_value(rest, &principal.sub),
                        Part::Claim(path) => match claim(&principal.claims, path) {
                            Some(Json::String(s)) => strip_value(rest, s),
                            Some(Json::Number(n)) => strip_display(rest, n),
                            _ => None,
                        },
                    };
                    match after {
                        Some(after) => rest = after,
                        None => return false,
                    }
                }
                rest.is_empty()
            }
        }
    }
}

/// Strips an interpolated string from the front of `rest`. An empty value
/// never matches: principals with an empty claim must not share a map.
fn strip_value<'a>(rest: &'a str, value: &str) -> Option<&'a str> {
    if value.is_empty() {
        None
    } else {
        rest.strip_prefix(value)
    }
}

/// Strips the display form of `value` from the front of `rest`, without
/// formatting it into a buffer.
fn strip_display<'a>(rest: &'a str, value: &impl fmt::Display) -> Option<&'a str> {
    struct Stripper<'a>(&'a str);
    impl fmt::Write for Stripper<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 = self.0.strip_prefix(s).ok_or(fmt::Error)?;
            Ok(())
        }
    }
    let mut stripper = Stripper(rest);
    write!(stripper, "{value}").ok()?;
    (stripper.0.len() < rest.len()).then_some(stripper.0)
}

/// Looks up a claim by path through nested JSON objects.
fn claim<'a>(claims: &'a serde_json::Map<String, Json>, path: &[Box<str>]) -> Option<&'a Json> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(claims.get(&**first)?, |value, name| value.get(&**name))
}

/// Parses one segment; `start` is its character offset in the pattern.
fn parse_segment(text: &str, start: usize) -> Result<Segment, PatternError> {
    let error = |offset: usize, kind| PatternError {
        position: start + offset,
        kind,
    };
    match text {
        "" => return Err(error(0, PatternErrorKind::EmptySegment)),
        "*" => return Ok(Segment::One),
        "**" => return Ok(Segment::Many),
        _ => {}
    }
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().enumerate();
    while let Some((i, c)) = chars.next() {
        match c {
            '*' => return Err(error(i, PatternErrorKind::PartialWildcard)),
            '}' => return Err(error(i, PatternErrorKind::StrayBrace)),
            '{' => {
                let mut inner = String::new();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    match c {
                        '}' => {
                            closed = true;
                            break;
                        }
                        '{' => break,
                        c => inner.push(c),
                    }
                }
                if !closed {
                    return Err(error(i, PatternErrorKind::UnclosedBrace));
                }
                let part = parse_interpolation(&inner)
                    .ok_or_else(|| error(i, PatternErrorKind::UnknownInterpolation(inner)))?;
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal).into()));
                }
                parts.push(part);
            }
            c => literal.push(c),
        }
    }
    if parts.is_empty() {
        return Ok(Segment::Literal(literal.into()));
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal.into()));
    }
    Ok(Segment::Interpolated(parts.into_boxed_slice()))
}

/// `sub` or `claims.<path>` with non-empty path segments.
fn parse_interpolation(inner: &str) -> Option<Part> {
    if inner == "sub" {
        return Some(Part::Sub);
    }
    let path = inner.strip_prefix("claims.")?;
    let names: Vec<Box<str>> = path.split('.').map(Box::from).collect();
    if names.iter().any(|n| n.is_empty() || n.contains('*')) {
        return None;
    }
    Some(Part::Claim(names.into_boxed_slice()))
}
