//! Simple paths (member names, wildcards, indices from the start; child and descendant
//! segments), followed while reading the text once: each value's place is matched against
//! the paths' segments as the walk reaches it, the way an automaton reads a word, and a
//! value no path can reach into is skipped whole.

use std::ops::Range;

use super::{string_at, string_end, Found, Selected};
use crate::json_fields::{skip, ws};

/// One segment of a simple path.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Segment {
    /// `..`: the selectors apply to the node and to every node under it.
    descendant: bool,
    /// At least one.
    selectors: Vec<Selector>,
}

#[derive(Clone, Debug, PartialEq)]
enum Selector {
    Name(String),
    Wildcard,
    Index(usize),
}

/// The segments of `path` when it is a simple path written in the plain syntax (`$`, then
/// `.name`, `.*`, `..name`, `..*` and brackets holding quoted names without escapes, `*`
/// and indices from 0, separated by commas, with no blank space); `None` for anything
/// else. `path` has already parsed as a JSONPath, so `None` only means: take the general
/// way.
pub(super) fn segments(path: &str) -> Option<Vec<Segment>> {
    let mut rest = path.strip_prefix('$')?;
    let mut segments = Vec::new();
    while !rest.is_empty() {
        let descendant = rest.starts_with("..");
        if descendant {
            rest = &rest[2..];
        }
        let selectors = if let Some(inside) = rest.strip_prefix('[') {
            let (selectors, after) = bracketed(inside)?;
            rest = after;
            selectors
        } else {
            if !descendant {
                rest = rest.strip_prefix('.')?;
            }
            if let Some(after) = rest.strip_prefix('*') {
                rest = after;
                vec![Selector::Wildcard]
            } else {
                let (name, after) = shorthand_name(rest)?;
                rest = after;
                vec![Selector::Name(name.to_owned())]
            }
        };
        segments.push(Segment {
            descendant,
            selectors,
        });
    }
    Some(segments)
}

/// The selectors of a bracketed segment from just past its `[`, and what follows its `]`.
fn bracketed(mut rest: &str) -> Option<(Vec<Selector>, &str)> {
    let mut selectors = Vec::new();
    loop {
        let first = *rest.as_bytes().first()?;
        let (selector, after) = match first {
            b'\'' | b'"' => {
                let inner = &rest[1..];
                let end = inner.find(char::from(first))?;
                let name = &inner[..end];
                if name.contains('\\') {
                    return None;
                }
                (Selector::Name(name.to_owned()), &inner[end + 1..])
            }
            b'*' => (Selector::Wildcard, &rest[1..]),
            b'0'..=b'9' => {
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                (
                    Selector::Index(rest[..digits].parse().ok()?),
                    &rest[digits..],
                )
            }
            _ => return None,
        };
        selectors.push(selector);
        match after.as_bytes().first()? {
            b',' => rest = &after[1..],
            b']' => return Some((selectors, &after[1..])),
            _ => return None,
        }
    }
}

/// A member name in shorthand (RFC 9535 `member-name-shorthand`: a letter, `_` or non-ASCII
/// character, then those or digits), and what follows it.
fn shorthand_name(rest: &str) -> Option<(&str, &str)> {
    let end = rest
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii()))
        .map_or(rest.len(), |(i, _)| i);
    let name = &rest[..end];
    let first = name.chars().next()?;
    (!first.is_ascii_digit()).then_some((name, &rest[end..]))
}

/// The deepest container a path is followed into, as serde_json's parser allows. Values no
/// path reaches into are skipped without keeping anything, at any depth.
const MAX_DEPTH: usize = 128;

/// Where one path is at a node: its first `step` segments led here.
#[derive(Clone, Copy, PartialEq)]
struct State {
    /// Index into the walk's paths.
    path: usize,
    step: usize,
}

/// A value's place in its container.
enum Key<'a> {
    Name(&'a str),
    Index(usize),
}

impl Selector {
    fn matches(&self, key: &Key<'_>) -> bool {
        match (self, key) {
            (Selector::Wildcard, _) => true,
            (Selector::Name(name), Key::Name(key)) => name == key,
            (Selector::Index(index), Key::Index(key)) => index == key,
            _ => false,
        }
    }
}

/// An open container that some path can reach into.
struct Frame {
    /// Its states, in the walk's `states`; every one has segments left.
    states: Range<usize>,
    /// Index of the next element, for an array; `None` for an object.
    next_index: Option<usize>,
    /// Its entry in `found`, when a path selected the container itself.
    found: Option<usize>,
}

struct Walk<'b, 'p> {
    json: &'b str,
    /// Each path's rule and segments.
    paths: &'p [(usize, Vec<Segment>)],
    /// The states of every open container, innermost last (a stack of ranges).
    states: Vec<State>,
    frames: Vec<Frame>,
    found: Vec<Found<'b>>,
}

/// The values `paths` (each with its rule) select in `json`, which must be valid JSON, in
/// document order. Iterative, so deep nesting cannot overflow the stack. `Err` when a
/// member name on the way is not a Unicode string (a lone surrogate escape): the core might
/// read it as anything; and past [`MAX_DEPTH`].
pub(super) fn select<'b>(
    json: &'b str,
    paths: &[(usize, Vec<Segment>)],
) -> Result<Vec<Found<'b>>, String> {
    let mut walk = Walk {
        json,
        paths,
        // Enough for usual bodies without growing.
        states: Vec::with_capacity(16),
        frames: Vec::with_capacity(8),
        found: Vec::with_capacity(16),
    };
    let mut root_selected = None;
    for (path, (rule, segments)) in paths.iter().enumerate() {
        if segments.is_empty() {
            root_selected = Some(root_selected.map_or(*rule, |r: usize| r.min(*rule)));
        } else {
            walk.states.push(State { path, step: 0 });
        }
    }
    let b = json.as_bytes();
    let mut i = walk.open(ws(b, 0), 0..walk.states.len(), root_selected)?;
    while let Some(frame) = walk.frames.last_mut() {
        i = ws(b, i);
        match b[i] {
            b',' => i = ws(b, i + 1),
            b'}' | b']' => {
                i += 1;
                let frame = walk.frames.pop().expect("the frame just seen");
                if let Some(entry) = frame.found {
                    walk.found[entry].span.end = i;
                }
                walk.states.truncate(frame.states.start);
                continue;
            }
            _ => {}
        }
        let parent = frame.states.clone();
        let name;
        let (key, value) = match &mut frame.next_index {
            Some(index) => {
                *index += 1;
                (Key::Index(*index - 1), i)
            }
            None => {
                let (decoded, name_end) = string_at(json, i);
                // The core might read a name that is no Unicode string as anything.
                name = decoded.ok_or("a member name has an invalid escape")?;
                // Past the ':' and the whitespace around it.
                (Key::Name(&name), ws(b, ws(b, name_end) + 1))
            }
        };
        let (states, selected) = walk.step(parent, &key);
        i = walk.open(value, states, selected)?;
    }
    Ok(walk.found)
}

impl<'b> Walk<'b, '_> {
    /// Pushes the states of the child at `key` of a node whose states are `parent`. Returns
    /// where they are, and the first rule that selects the child, if one does.
    fn step(&mut self, parent: Range<usize>, key: &Key<'_>) -> (Range<usize>, Option<usize>) {
        let first = self.states.len();
        let mut selected: Option<usize> = None;
        for k in parent {
            let State { path, step } = self.states[k];
            let (rule, segments) = &self.paths[path];
            let segment = &segments[step];
            if segment.descendant {
                self.push(first, State { path, step });
            }
            if segment.selectors.iter().any(|s| s.matches(key)) {
                if step + 1 == segments.len() {
                    selected = Some(selected.map_or(*rule, |r| r.min(*rule)));
                } else {
                    self.push(
                        first,
                        State {
                            path,
                            step: step + 1,
                        },
                    );
                }
            }
        }
        (first..self.states.len(), selected)
    }

    /// Adds `state` to the states from `first` on, unless it is there: a node has each
    /// state once, however many ways led to it.
    fn push(&mut self, first: usize, state: State) {
        if !self.states[first..].contains(&state) {
            self.states.push(state);
        }
    }

    /// Starts the value at `i`, whose states are `states` (the last ones pushed) and which
    /// `selected`'s rule selects, if any: opens a frame for a container some path reaches
    /// into, or skips the value. Returns where the walk goes on; `Err` for a selected
    /// string that is not Unicode (a lone surrogate escape), which no rule could read, and
    /// which must not go out as it is.
    fn open(
        &mut self,
        i: usize,
        states: Range<usize>,
        selected: Option<usize>,
    ) -> Result<usize, String> {
        let b = self.json.as_bytes();
        let container = matches!(b[i], b'{' | b'[');
        if container && !states.is_empty() {
            // Each open frame holds memory; a body of brackets under a `..` path must not
            // multiply its size.
            if self.frames.len() == MAX_DEPTH {
                return Err(format!("the body nests deeper than {MAX_DEPTH} levels"));
            }
            let found = selected.map(|rule| {
                // The end is set when the container closes.
                self.found.push(Found {
                    rule,
                    span: i..i,
                    value: Selected::Other,
                });
                self.found.len() - 1
            });
            self.frames.push(Frame {
                states,
                next_index: (b[i] == b'[').then_some(0),
                found,
            });
            return Ok(i + 1);
        }
        self.states.truncate(states.start);
        let end = match b[i] {
            b'"' => string_end(b, i).0,
            _ => skip(b, i),
        };
        if let Some(rule) = selected {
            let value = match b[i] {
                b'"' => Selected::String(
                    (string_at(self.json, i).0).ok_or("a selected string has an invalid escape")?,
                ),
                _ => Selected::of(&self.json[i..end]),
            };
            self.found.push(Found {
                rule,
                span: i..end,
                value,
            });
        }
        Ok(end)
    }
}
