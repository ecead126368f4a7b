//! The answer's shape limits: hostile answers that fit in the size cap but would make the
//! parser's work grow faster than the text are refused by the pass before it, and answers
//! within the limits still translate.

use serde_json::json;

use super::*;
use crate::soap::limits::{
    self, Exceeded, MAX_ATTRIBUTES, MAX_ELEMENT_DEPTH, MAX_NAMESPACES_IN_SCOPE, MAX_NODES,
};
use crate::soap::xml::{self, ReadError};

/// The default `max_response_bytes`.
const MB: usize = 1 << 20;

/// An envelope's start and `head`, then `item(0)`, `item(1)`… as long as the text stays
/// under `size` bytes; left open, as an attacker may: the parser's work is done before it
/// would see the end.
fn filled(head: &str, size: usize, item: impl Fn(usize) -> String) -> String {
    let mut text = format!(r#"<s:Envelope xmlns:s="{SOAP11}"><s:Body>{head}"#);
    for i in 0.. {
        let next = item(i);
        if text.len() + next.len() > size {
            break;
        }
        text.push_str(&next);
    }
    text
}

/// A name of letters for `i`, as short as can be: the more fit in the cap, the worse. No `x`,
/// so never `xml`, a prefix the parser refuses to rebind.
fn short_name(mut i: usize) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut name = String::new();
    loop {
        name.push(LETTERS[i % LETTERS.len()] as char);
        i /= LETTERS.len();
        if i == 0 {
            return name;
        }
    }
}

/// Why `xml::parse` refused the text, which must be a shape limit.
fn refused_for(text: &str) -> Exceeded {
    match xml::parse(text) {
        Err(ReadError::Shape(exceeded)) => exceeded,
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("parsed"),
    }
}

/// Each hostile answer is refused by the pass before the parser, and through the filter it is
/// the 502 that any malformed answer gives.
fn assert_refused(text: &str, why: Exceeded) {
    assert!(text.len() <= MB, "{} bytes: over the size cap", text.len());
    assert_eq!(limits::check(text), Err(why));
    assert_eq!(refused_for(text), why);
    let f = filter(&base("request = \"<a/>\""));
    let p = refused(&f, 200, text.as_bytes());
    assert_problem(&p, 502, "upstream-malformed");
    assert_eq!(p.detail, None);
}

#[test]
fn deep_nesting_with_a_new_prefix_per_level_is_refused() {
    // ~60k levels in 1 MB, each declaring a prefix: roxmltree would copy every prefix in
    // scope into every level, ~1.9e9 entries.
    let deep = filled("", MB, |i| format!("<e xmlns:{}=\"u\">", short_name(i)));
    assert!(deep.matches("xmlns:").count() > 50_000);
    assert_refused(&deep, Exceeded::Depth);
    // The same without namespaces, and closed.
    let levels = MB / 16;
    let closed = format!(
        "<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body>{}{}</s:Body></s:Envelope>",
        "<e>".repeat(levels),
        "</e>".repeat(levels)
    );
    assert_refused(&closed, Exceeded::Depth);
}

#[test]
fn one_element_with_a_hundred_thousand_attributes_is_refused() {
    // roxmltree would compare each attribute with every earlier one: ~5e9 comparisons.
    // The tag ends: the check runs at its end.
    let wide = filled("<r", MB - 1, |i| format!(" {}=\"\"", short_name(i))) + ">";
    assert!(wide.matches('=').count() > 100_000);
    assert_refused(&wide, Exceeded::Attributes);
    // Namespace declarations count as attributes, and first as namespaces in scope.
    let declarations = filled("<r", MB - 1, |i| format!(" xmlns:{}=\"u\"", short_name(i))) + ">";
    assert!(declarations.matches("xmlns:").count() > 50_000);
    assert_refused(&declarations, Exceeded::NamespacesInScope);
}

#[test]
fn namespaces_declared_too_often_are_refused() {
    // Declarations spread over a few levels, within the depth and attribute limits.
    let per_level = 30;
    let levels: String = (0..5)
        .map(|level| {
            let declarations: String = (0..per_level)
                .map(|i| format!(" xmlns:l{level}n{i}=\"urn:{i}\""))
                .collect();
            format!("<l{level}{declarations}>")
        })
        .collect();
    let text = format!("<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body>{levels}");
    assert_refused(&text, Exceeded::NamespacesInScope);

    // Under 127 namespaces in scope, every sibling declares one more: each declaration makes
    // roxmltree copy all of them.
    let root: String = (0..MAX_NAMESPACES_IN_SCOPE - 2)
        .map(|i| format!(" xmlns:n{i}=\"urn:{i}\""))
        .collect();
    let text = filled(&format!("<r{root}>"), MB, |i| {
        format!("<q{i}:e xmlns:q{i}=\"u\"/>")
    });
    assert_refused(&text, Exceeded::NamespaceBindings);
}

#[test]
fn too_many_nodes_are_refused_by_the_parser() {
    let nodes = MAX_NODES as usize;
    let text = format!(
        "<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body>{}</s:Body></s:Envelope>",
        "<a/>".repeat(nodes)
    );
    assert_eq!(limits::check(&text), Ok(()));
    assert_eq!(refused_for(&text), Exceeded::Nodes);
    let f = filter(&base("request = \"<a/>\"\nmax_response_bytes = 4194304"));
    assert_problem(
        &refused(&f, 200, text.as_bytes()),
        502,
        "upstream-malformed",
    );
    // Under the limit, the same shape parses.
    let text = text.replacen(&"<a/>".repeat(nodes / 2), "", 1);
    assert!(xml::parse(&text).is_ok());
}

#[test]
fn answers_at_the_limits_translate() {
    let f = filter(&base("request = \"<a/>\""));
    // As deep as allowed (Envelope and Body are two of the levels): parsed, then refused by
    // the mapping, whose JSON stops earlier.
    let depth = MAX_ELEMENT_DEPTH - 2;
    let nested = format!(
        "<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body>{}x{}</s:Body></s:Envelope>",
        "<d>".repeat(depth),
        "</d>".repeat(depth)
    );
    assert!(xml::parse(&nested).is_ok());
    assert_problem(
        &refused(&f, 200, nested.as_bytes()),
        502,
        "upstream-malformed",
    );
    let deeper = nested
        .replacen("<d>", "<d><d>", 1)
        .replacen("</d>", "</d></d>", 1);
    assert_eq!(refused_for(&deeper), Exceeded::Depth);

    // As many attributes as allowed; the generic mapping keeps them all.
    let attributes: String = (0..MAX_ATTRIBUTES)
        .map(|i| format!(" a{i}=\"{i}\""))
        .collect();
    let wide = envelope11("acc", &format!("<acc:R{attributes}/>"));
    let json = answer(&f, &wide);
    assert_eq!(json.as_object().unwrap().len(), MAX_ATTRIBUTES);
    assert_eq!(json["@a255"], json!("255"));
    let wider = wide.replace("<acc:R ", "<acc:R b=\"\" ");
    assert_eq!(refused_for(&wider), Exceeded::Attributes);

    // As many namespaces in scope as allowed: the envelope declares two.
    let declarations: String = (0..MAX_NAMESPACES_IN_SCOPE - 2)
        .map(|i| format!(" xmlns:n{i}=\"urn:{i}\""))
        .collect();
    let many = envelope11("acc", &format!("<acc:R{declarations}>1</acc:R>"));
    assert_eq!(answer(&f, &many), json!("1"));
    let more = many.replace("<acc:R ", "<acc:R xmlns:x=\"u\" ");
    assert_eq!(refused_for(&more), Exceeded::NamespacesInScope);
}

#[test]
fn cores_that_redeclare_namespaces_on_every_item_translate() {
    // As Axis multiRefs or .NET arrays do: a few declarations on each of thousands of items.
    let items: String = (0..5000)
        .map(|i| {
            format!(
                "<acc:i xmlns:ns2=\"urn:types\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"ns2:Item\"><acc:v>{i}</acc:v></acc:i>"
            )
        })
        .collect();
    let text = envelope11("acc", &format!("<acc:R>{items}</acc:R>"));
    assert!(text.len() < MB);
    let f = filter(&base("request = \"<a/>\""));
    let json = answer(&f, &text);
    assert_eq!(json["i"].as_array().unwrap().len(), 5000);
    assert_eq!(json["i"][4999]["v"], json!("4999"));
}

#[test]
fn markup_inside_comments_cdata_pis_and_quoted_values_is_not_counted() {
    let deep = "<a>".repeat(MAX_ELEMENT_DEPTH + 1);
    let wide: String = (0..=MAX_ATTRIBUTES).map(|i| format!(" a{i}=''")).collect();
    for hidden in [
        format!("<!--{deep}-->"),
        // Only the whole terminator ends each, and not one that overlaps the opener.
        format!("<!-- -> {deep}-->"),
        format!("<!-->{deep}-->"),
        format!("<![CDATA[{deep}]]>"),
        format!("<![CDATA[ ]] ]> {deep}]]>"),
        format!("<?pi {deep}?>"),
        format!("<?pi ? > {deep}?>"),
        format!("<?>{deep}?>"),
        format!("<e x=\"{deep}\"/>"),
        format!("<e x='{deep}'/>"),
        format!("<e x=\"{wide}\"/>"),
        format!("<e x='{}'/>", wide.replace('\'', "\"")),
        // A `>` in a value does not end the tag, `/>` in one does not make it empty.
        format!("<e x=\">\" y='/>'>{}</e>", "<f/>".repeat(10)),
        // Comment-like text in a value, and `-->` ends only a comment.
        format!("<e x=\"<!--\">--></e>{}", "<f/>".repeat(10)),
    ] {
        let text = format!("<r>{hidden}</r>");
        assert_eq!(limits::check(&text), Ok(()), "{text}");
    }
    // A quoted `>` inside an open tag: the tag still opens a level.
    let opens = "<a x='>'>".repeat(MAX_ELEMENT_DEPTH);
    assert_eq!(limits::check(&opens), Ok(()));
    assert_eq!(
        limits::check(&format!("{opens}<a x=\"/\">")),
        Err(Exceeded::Depth)
    );
    // Empty elements and closed ones do not deepen.
    let siblings = format!("{}{}", "<a/><b x='1'></b>".repeat(10_000), "<c />");
    assert_eq!(limits::check(&format!("<r>{siblings}</r>")), Ok(()));
    // The end of one hidden part is where markup counts again.
    let after = format!("<!-- x -->{deep}");
    assert_eq!(limits::check(&after), Err(Exceeded::Depth));
    let after = format!("<![CDATA[ ]] > ]]>{deep}");
    assert_eq!(limits::check(&after), Err(Exceeded::Depth));
}

#[test]
fn namespace_declarations_are_told_from_other_attributes() {
    // One more level than namespaces may be in scope: a declaration on each is refused for
    // them, before the nesting is.
    let levels = |attribute: &str| {
        limits::check(&format!("<e {attribute}>").repeat(MAX_NAMESPACES_IN_SCOPE + 1))
    };
    // `a:xmlns` too: roxmltree takes it for a default namespace declaration.
    for declaration in [
        "xmlns='u'",
        "xmlns:a=\"u\"",
        "xmlns = \"u\"",
        "xmlns:a\t=\n'u'",
        "a:xmlns='u'",
    ] {
        assert_eq!(
            levels(declaration),
            Err(Exceeded::NamespacesInScope),
            "{declaration}"
        );
    }
    for other in [
        "xmlnsa='u'",
        "x='xmlns:a'",
        "xml:lang='en'",
        "a='1' b=\"xmlns\"",
    ] {
        assert_eq!(levels(other), Err(Exceeded::Depth), "{other}");
    }
    // An element named like a declaration declares nothing.
    let named = "<xmlns:a>".repeat(MAX_NAMESPACES_IN_SCOPE);
    assert_eq!(limits::check(&named), Ok(()));
}

#[test]
fn unfinished_markup_is_left_to_the_parser() {
    for text in [
        "<a x=\"",
        "<a x='>",
        "<!-- ",
        "<![CDATA[ <a>",
        "<?pi <a>",
        "<a",
        "</a",
        "<",
        "",
        "</a></b><a>",
        "text only > and ]]> and -->",
    ] {
        assert_eq!(limits::check(text), Ok(()), "{text}");
        assert!(xml::parse(text).is_err(), "{text}");
    }
}
