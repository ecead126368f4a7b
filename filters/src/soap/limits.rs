//! Limits on the answer's shape, checked by one linear pass over the text before roxmltree
//! parses it. roxmltree 0.21's work grows faster than the text in a few places: it compares
//! each attribute (and each namespace declaration) of an element with the element's earlier
//! ones; into every element that declares a namespace it copies the namespaces in scope,
//! checking each against the new ones; and it looks every prefix up among the namespaces in
//! scope. Unchecked, a 1 MB answer can cost hours of CPU and gigabytes of memory (~60k nested
//! elements, each declaring a prefix); within these limits the work stays a small multiple
//! of the text's length.
//!
//! The pass knows only what decides where markup is: comments, CDATA sections, processing
//! instructions and quoted attribute values (which may hold `>` and `<`) are skipped whole;
//! everything else is left to the parser. Where the text is not well-formed the pass may count
//! more than the parser would read, never less: the parser stops at the first error.

/// The deepest element nesting read. The JSON stops at 64 levels below the Body anyway.
pub(crate) const MAX_ELEMENT_DEPTH: usize = 128;
/// The most attributes (namespace declarations included) on one element: roxmltree checks
/// each against the element's earlier ones.
pub(crate) const MAX_ATTRIBUTES: usize = 256;
/// The most namespace declarations in scope at an element (its own and its ancestors'):
/// roxmltree looks every prefix up among them, and copies them into every element that
/// declares another. Envelopes in use declare a few dozen.
pub(crate) const MAX_NAMESPACES_IN_SCOPE: usize = 128;
/// The most namespace bindings roxmltree may store for one answer: the declarations in scope
/// summed over the elements that declare one (2 bytes each). Cores that redeclare a few
/// namespaces on every item of a list stay well under it.
pub(crate) const MAX_NAMESPACE_BINDINGS: usize = 1 << 18;
/// The most nodes (elements, texts, comments, processing instructions) parsed, which roxmltree
/// counts itself: a few dozen bytes each. A 1 MB answer of short elements has about 250k.
pub(crate) const MAX_NODES: u32 = 1 << 19;

/// Which limit an answer is over. The messages go to logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Exceeded {
    #[error("elements nest deeper than {MAX_ELEMENT_DEPTH} levels")]
    Depth,
    #[error("an element has over {MAX_ATTRIBUTES} attributes")]
    Attributes,
    #[error("over {MAX_NAMESPACES_IN_SCOPE} namespace declarations are in scope at an element")]
    NamespacesInScope,
    #[error("namespaces are declared too often (over {MAX_NAMESPACE_BINDINGS} bindings)")]
    NamespaceBindings,
    #[error("the answer has over {MAX_NODES} nodes")]
    Nodes,
}

/// Whether `text` keeps within the limits; one pass, each byte looked at a bounded number of
/// times.
pub(crate) fn check(text: &str) -> Result<(), Exceeded> {
    let bytes = text.as_bytes();
    let mut scopes = Scopes::default();
    let mut at = 0;
    while let Some(open) = find(bytes, at, b"<") {
        let markup = &bytes[open..];
        at = if markup.starts_with(b"<!--") {
            past(bytes, open + 4, b"-->")
        } else if markup.starts_with(b"<![CDATA[") {
            past(bytes, open + 9, b"]]>")
        } else if markup.starts_with(b"<?") {
            past(bytes, open + 2, b"?>")
        } else if markup.starts_with(b"</") {
            scopes.close();
            past(bytes, open + 2, b">")
        } else {
            // A start tag; anything else after `<` is an error the parser reports first.
            start_tag(bytes, open + 1, &mut scopes)?
        };
    }
    Ok(())
}

/// The open elements' namespace declarations, and the bindings roxmltree will have stored.
#[derive(Default)]
struct Scopes {
    /// Per open element, outermost first; at most [`MAX_ELEMENT_DEPTH`] long.
    declared: Vec<usize>,
    /// The sum of `declared`.
    in_scope: usize,
    bindings: usize,
}

impl Scopes {
    /// An element's start tag read, with `declarations` namespace declarations.
    fn start(&mut self, declarations: usize, empty: bool) -> Result<(), Exceeded> {
        if self.declared.len() >= MAX_ELEMENT_DEPTH {
            return Err(Exceeded::Depth);
        }
        if declarations > 0 {
            // An upper bound: a redeclared prefix is stored once.
            self.bindings += self.in_scope + declarations;
            if self.bindings > MAX_NAMESPACE_BINDINGS {
                return Err(Exceeded::NamespaceBindings);
            }
        }
        if !empty {
            self.declared.push(declarations);
            self.in_scope += declarations;
        }
        Ok(())
    }

    /// An end tag read. One too many is the parser's error to report.
    fn close(&mut self) {
        if let Some(declarations) = self.declared.pop() {
            self.in_scope -= declarations;
        }
    }
}

/// The start tag whose name begins at `from`, counted; where the text after it begins.
fn start_tag(bytes: &[u8], from: usize, scopes: &mut Scopes) -> Result<usize, Exceeded> {
    let (mut attributes, mut declarations) = (0, 0);
    // The last run of name characters: the attribute's name when `=` comes.
    let mut word = from..from;
    let mut at = from;
    while at < bytes.len() {
        match bytes[at] {
            quote @ (b'"' | b'\'') => {
                at = past(bytes, at + 1, &[quote]);
                word = at..at;
                continue;
            }
            b'=' => {
                attributes += 1;
                if attributes > MAX_ATTRIBUTES {
                    return Err(Exceeded::Attributes);
                }
                if is_declaration(&bytes[word.clone()]) {
                    declarations += 1;
                    if scopes.in_scope + declarations > MAX_NAMESPACES_IN_SCOPE {
                        return Err(Exceeded::NamespacesInScope);
                    }
                }
                word = at + 1..at + 1;
            }
            b'>' => {
                let empty = at > from && bytes[at - 1] == b'/';
                scopes.start(declarations, empty)?;
                return Ok(at + 1);
            }
            b' ' | b'\t' | b'\r' | b'\n' | b'/' => {}
            _ if word.end == at => word.end = at + 1,
            _ => word = at..at + 1,
        }
        at += 1;
    }
    // Unclosed: not well-formed, which the parser reports.
    Ok(bytes.len())
}

/// Whether an attribute of this name declares a namespace to roxmltree: `xmlns`, `xmlns:p`,
/// and also `p:xmlns`, which it takes for a default namespace.
fn is_declaration(name: &[u8]) -> bool {
    name == b"xmlns" || name.starts_with(b"xmlns:") || name.ends_with(b":xmlns")
}

/// Where `pattern` next starts at or after `from`.
fn find(bytes: &[u8], from: usize, pattern: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(pattern.len())
        .position(|window| window == pattern)
        .map(|offset| from + offset)
}

/// Just after the next `pattern` at or after `from`; the end when there is none.
fn past(bytes: &[u8], from: usize, pattern: &[u8]) -> usize {
    find(bytes, from, pattern).map_or(bytes.len(), |at| at + pattern.len())
}
