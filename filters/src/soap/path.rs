//! Element paths of the response mapping: `acc:balance/acc:available`, `@currency`, `.`.
//!
//! Each step names an element child by namespace URI and local name: `acc:balance` (the
//! prefix as declared in `namespaces`), `*:balance` (any namespace) or `balance` (no
//! namespace, as in XPath). A last step `@name` (or `@acc:name`) picks an attribute. As in
//! XPath, a path reaches every element that matches along it (`a/b`: every `b` of every
//! `a`); a single value is the first of them in document order.

use roxmltree::Node;

use super::config::is_ncname;
use super::xml::elements;
use super::SoapConfig;

/// A compiled path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ElementPath {
    steps: Vec<Name>,
    /// The attribute the path ends in, if it does.
    attribute: Option<Name>,
}

/// A name test: a namespace (by URI) and a local name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Name {
    namespace: Namespace,
    local: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Namespace {
    Any,
    None,
    Uri(String),
}

/// What a path reaches: an element, or an attribute's value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a, 'i> {
    Element(Node<'a, 'i>),
    Attribute(&'a str),
}

impl ElementPath {
    /// `path` with its prefixes bound through the config's `namespaces`.
    pub(crate) fn compile(path: &str, config: &SoapConfig) -> Result<Self, String> {
        if path == "." {
            return Ok(ElementPath {
                steps: Vec::new(),
                attribute: None,
            });
        }
        let mut steps = Vec::new();
        let mut attribute = None;
        for part in path.split('/') {
            if attribute.is_some() {
                return Err(format!("path {path:?}: an attribute must be the last step"));
            }
            match part.strip_prefix('@') {
                Some(name) => attribute = Some(Name::compile(name, true, path, config)?),
                None => steps.push(Name::compile(part, false, path, config)?),
            }
        }
        Ok(ElementPath { steps, attribute })
    }

    pub(crate) fn ends_in_attribute(&self) -> bool {
        self.attribute.is_some()
    }

    /// Whether the path is `.`, the element it starts from.
    pub(crate) fn is_current(&self) -> bool {
        self.steps.is_empty() && self.attribute.is_none()
    }

    /// The first element (or attribute value) the path reaches from `from`, in document
    /// order.
    pub(crate) fn first<'a, 'i>(&self, from: Node<'a, 'i>) -> Option<Target<'a, 'i>> {
        match &self.attribute {
            None => first_reached(from, &self.steps, &|node| Some(Target::Element(node))),
            Some(name) => first_reached(from, &self.steps, &|node| {
                node.attributes()
                    .find(|a| name.matches(a.namespace(), a.name()))
                    .map(|a| Target::Attribute(a.value()))
            }),
        }
    }

    /// Every element the path reaches from `from`, in document order.
    pub(crate) fn all<'a, 'i>(&self, from: Node<'a, 'i>) -> Vec<Node<'a, 'i>> {
        let mut reached = vec![from];
        for step in &self.steps {
            reached = reached
                .into_iter()
                .flat_map(elements)
                .filter(|child| step.matches_element(child))
                .collect();
        }
        reached
    }
}

/// The first of the elements `steps` reach from `node` for which `accept` gives a value.
/// Recursion is as deep as the path has steps.
fn first_reached<'a, 'i, T>(
    node: Node<'a, 'i>,
    steps: &[Name],
    accept: &impl Fn(Node<'a, 'i>) -> Option<T>,
) -> Option<T> {
    match steps.split_first() {
        None => accept(node),
        Some((step, rest)) => elements(node)
            .filter(|child| step.matches_element(child))
            .find_map(|child| first_reached(child, rest, accept)),
    }
}

impl Name {
    fn compile(
        step: &str,
        attribute: bool,
        path: &str,
        config: &SoapConfig,
    ) -> Result<Self, String> {
        let (namespace, local) = match step.split_once(':') {
            Some(("*", local)) => (Namespace::Any, local),
            Some((prefix, local)) => match config.namespaces.get(prefix) {
                Some(uri) => (Namespace::Uri(uri.clone()), local),
                None => {
                    return Err(format!(
                        "path {path:?}: prefix {prefix:?} is not declared in namespaces"
                    ))
                }
            },
            None => (Namespace::None, step),
        };
        if !is_ncname(local) {
            let what = if attribute { "attribute" } else { "element" };
            return Err(format!(
                "path {path:?}: {step:?} is not an {what} name (a leading `/` is only for \
                 response.root, `.` only alone)"
            ));
        }
        Ok(Name {
            namespace,
            local: local.to_owned(),
        })
    }

    fn matches_element(&self, node: &Node<'_, '_>) -> bool {
        let name = node.tag_name();
        self.matches(name.namespace(), name.name())
    }

    fn matches(&self, namespace: Option<&str>, local: &str) -> bool {
        local == self.local
            && match &self.namespace {
                Namespace::Any => true,
                Namespace::None => namespace.is_none(),
                Namespace::Uri(uri) => namespace == Some(uri.as_str()),
            }
    }
}
