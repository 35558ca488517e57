//! `Template`: a compiled InputTemplate (a list of literal and placeholder segments, each
//! placeholder with its rendering mode) and its per-record rendering in one pass into one String.

use std::ops::Range;

use serde_json::Value;

use crate::compile::{find_placeholders, json_shape, scan_json, Mode, Var};
use crate::error::{Position, TemplateError};
use crate::path::Found;
use crate::write::{write_many, write_str, write_value, Escaped, Raw, Sink, Style};

/// Longest accepted template, in characters.
pub const MAX_TEMPLATE_LEN: usize = 8192;

/// The five forms of an InputTemplate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    /// Text without placeholders, copied as is (quotes included).
    StaticString,
    /// Exactly one placeholder and nothing else, rendered in string form.
    SinglePath,
    /// Text with placeholders, rendered in string form.
    StringWithPaths,
    /// JSON without placeholders, copied as is.
    StaticJson,
    /// JSON with placeholders as values or inside string values.
    JsonWithPaths,
}

impl Form {
    /// Whether templates of this form render JSON.
    pub fn is_json(self) -> bool {
        matches!(self, Form::StaticJson | Form::JsonWithPaths)
    }
}

/// What the reserved `<aws.pipes....>` variables stand for while rendering one record.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// `<aws.pipes.pipe-arn>`
    pub pipe_arn: &'a str,
    /// `<aws.pipes.pipe-name>`
    pub pipe_name: &'a str,
    /// `<aws.pipes.source-arn>`
    pub source_arn: &'a str,
    /// `<aws.pipes.enrichment-arn>`
    pub enrichment_arn: &'a str,
    /// `<aws.pipes.target-arn>`
    pub target_arn: &'a str,
    /// `<aws.pipes.event.ingestion-time>`: ISO-8601 time at which the record entered the stage.
    pub ingestion_time: &'a str,
    /// `<aws.pipes.event>`: the original record as JSON text.
    pub event_text: &'a str,
    /// `<aws.pipes.event.json>`: the record with encoded fields decoded.
    pub event_json: &'a Value,
}

static NULL: Value = Value::Null;

impl Default for Context<'_> {
    /// Empty strings and a `null` record: for tests and tools that have no pipe.
    fn default() -> Self {
        Context {
            pipe_arn: "",
            pipe_name: "",
            source_arn: "",
            enrichment_arn: "",
            target_arn: "",
            ingestion_time: "",
            event_text: "",
            event_json: &NULL,
        }
    }
}

/// What happened while rendering one record, for the caller to log or count. Rendering itself
/// never fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderReport {
    /// Placeholders whose path resolved to nothing (rendered as empty text, `""` as a JSON value).
    pub missing: u32,
    /// Quoted placeholders (`"<$.x>"`) that resolved to an object or array, which AWS calls
    /// invalid. They are rendered in string form (`{k: v}`), escaped, so the JSON stays valid.
    pub quoted_composites: u32,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(Range<usize>),
    Placeholder(Var, Mode),
}

/// A compiled InputTemplate (at most 8,192 characters). Compiled once per pipe; rendered per
/// record without re-parsing.
#[derive(Debug, Clone)]
pub struct Template {
    text: Box<str>,
    segments: Box<[Segment]>,
    form: Form,
    literal_len: usize,
}

impl Template {
    /// Compiles a template; the error names the position and the reason.
    pub fn compile(text: &str) -> Result<Template, TemplateError> {
        // Only count characters when the byte length could exceed the limit.
        if text.len() > MAX_TEMPLATE_LEN {
            let len = text.chars().count();
            if len > MAX_TEMPLATE_LEN {
                return Err(TemplateError::TemplateTooLong {
                    len,
                    max: MAX_TEMPLATE_LEN,
                });
            }
        }
        let placeholders = find_placeholders(text)?;
        let shape = json_shape(text);
        let modes = match shape {
            Some(shape) => scan_json(text, &placeholders, shape)?,
            None => {
                if let Some(p) = placeholders.iter().find(|p| p.source == Var::EventJson) {
                    return Err(TemplateError::EventJsonNotAValue {
                        at: Position::of(text, p.start),
                    });
                }
                vec![Mode::Text; placeholders.len()]
            }
        };

        let mut segments = Vec::with_capacity(placeholders.len() * 2 + 1);
        let mut literal_len = 0;
        let mut at = 0;
        for (p, mode) in placeholders.into_iter().zip(modes) {
            if at < p.start {
                segments.push(Segment::Literal(at..p.start));
                literal_len += p.start - at;
            }
            at = p.end;
            segments.push(Segment::Placeholder(p.source, mode));
        }
        if at < text.len() {
            segments.push(Segment::Literal(at..text.len()));
            literal_len += text.len() - at;
        }

        let count = segments.len()
            - segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count();
        let form = match (shape.is_some(), count) {
            (true, 0) => Form::StaticJson,
            (true, _) => Form::JsonWithPaths,
            (false, 0) => Form::StaticString,
            (false, 1) if segments.len() == 1 => Form::SinglePath,
            (false, _) => Form::StringWithPaths,
        };
        Ok(Template {
            text: text.into(),
            segments: segments.into_boxed_slice(),
            form,
            literal_len,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Which of the five forms this template is.
    pub fn form(&self) -> Form {
        self.form
    }

    /// True when the rendered output is JSON (static JSON, JSON with paths); false for the text
    /// forms. Decides the Content-Type.
    pub fn is_json(&self) -> bool {
        self.form.is_json()
    }

    /// Whether rendering reads `ctx.event_text` (`<aws.pipes.event>`); when false the caller can
    /// skip serializing the record.
    pub fn uses_event_text(&self) -> bool {
        self.uses(&Var::Event)
    }

    /// Whether rendering reads `ctx.event_json` (`<aws.pipes.event.json>`).
    pub fn uses_event_json(&self) -> bool {
        self.uses(&Var::EventJson)
    }

    fn uses(&self, source: &Var) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Placeholder(src, _) if src == source))
    }

    /// Renders the template for one record.
    pub fn render(&self, event: &Value, ctx: &Context<'_>) -> String {
        let mut out = String::new();
        self.render_into(event, ctx, &mut out);
        out
    }

    /// Renders the template for one record, appending to `out` (reuse one buffer across records),
    /// and reports missing paths and quoted objects/arrays.
    pub fn render_into(&self, event: &Value, ctx: &Context<'_>, out: &mut String) -> RenderReport {
        let mut report = RenderReport::default();
        out.reserve(self.literal_len + 8 * self.segments.len());
        for segment in self.segments.iter() {
            match segment {
                // Ranges come from `compile` on char boundaries; `get` keeps this panic-free.
                Segment::Literal(range) => out.push_str(self.text.get(range.clone()).unwrap_or("")),
                Segment::Placeholder(source, mode) => {
                    render_placeholder(source, *mode, event, ctx, out, &mut report);
                }
            }
        }
        report
    }
}

fn render_placeholder(
    source: &Var,
    mode: Mode,
    event: &Value,
    ctx: &Context<'_>,
    out: &mut String,
    report: &mut RenderReport,
) {
    let what = match source {
        Var::Path(path) => match path.find(event) {
            Found::Nothing => {
                report.missing += 1;
                if mode == Mode::Json {
                    out.push_str("\"\"");
                }
                return;
            }
            Found::One(v) => {
                if mode == Mode::Quoted && (v.is_object() || v.is_array()) {
                    report.quoted_composites += 1;
                }
                return emit(mode, out, What::One(v));
            }
            Found::Many(vs) => {
                if mode == Mode::Quoted {
                    report.quoted_composites += 1;
                }
                return emit(mode, out, What::Many(&vs));
            }
        },
        Var::EventJson => What::One(ctx.event_json),
        // The other reserved variables are strings.
        Var::PipeArn => What::Str(ctx.pipe_arn),
        Var::PipeName => What::Str(ctx.pipe_name),
        Var::SourceArn => What::Str(ctx.source_arn),
        Var::EnrichmentArn => What::Str(ctx.enrichment_arn),
        Var::TargetArn => What::Str(ctx.target_arn),
        Var::IngestionTime => What::Str(ctx.ingestion_time),
        Var::Event => What::Str(ctx.event_text),
    };
    emit(mode, out, what);
}

/// What one placeholder writes.
enum What<'v, 'm> {
    One(&'v Value),
    Many(&'m [&'v Value]),
    Str(&'v str),
}

/// Picks the style and sink of a mode (JSON raw, text raw, or text escaped inside a JSON string);
/// generic, so each combination is compiled without dynamic dispatch.
#[inline]
fn emit(mode: Mode, out: &mut String, what: What<'_, '_>) {
    match mode {
        Mode::Json => emit_to(what, Style::Json, &mut Raw(out)),
        Mode::Text => emit_to(what, Style::Text, &mut Raw(out)),
        Mode::Quoted => emit_to(what, Style::Text, &mut Escaped(out)),
    }
}

fn emit_to<S: Sink>(what: What<'_, '_>, style: Style, sink: &mut S) {
    match what {
        What::One(v) => write_value(v, style, sink),
        What::Many(vs) => write_many(vs, style, sink),
        What::Str(s) => write_str(s, style, sink),
    }
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
