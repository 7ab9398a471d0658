//! Reading a service definition from TOML text or a file, with every error located by file,
//! line, column and field.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::de::DeTable;

use crate::model::{Service, SpecError};
use crate::position::{SpanIndex, line_col};
use crate::raw::RawService;

/// A definition that could not be read, parsed or validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DefinitionError {
    /// File name as given by the caller.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column in characters, when known.
    pub column: Option<usize>,
    /// Field path such as `components[0].name`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DefinitionError {
    /// `file:line:col: field: message`, leaving out the parts that are unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl DefinitionError {
    fn at(
        origin: &str,
        text: &str,
        span: Option<Range<usize>>,
        field: Option<String>,
        message: String,
    ) -> Self {
        let (line, column) = span.map(|s| line_col(text, s.start)).unzip();
        Self {
            file: origin.to_owned(),
            line,
            column,
            field,
            message,
        }
    }
}

/// Reads and validates a definition file; the error's `file` is the path as given.
pub fn load_file(path: &Path) -> Result<Service, DefinitionError> {
    let origin = path.display().to_string();
    let fail = |message: String| DefinitionError {
        file: origin.clone(),
        line: None,
        column: None,
        field: None,
        message,
    };
    // Checked before reading: a definition is a page of TOML, and a huge file (or a device)
    // must not reach the parser or the gRPC size limit.
    if let Ok(meta) = std::fs::metadata(path)
        && meta.len() > MAX_DEFINITION_BYTES
    {
        return Err(fail(format!(
            "the definition is {} bytes; at most {MAX_DEFINITION_BYTES} are accepted",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| DefinitionError {
        file: origin.clone(),
        line: None,
        column: None,
        field: None,
        message: format!("cannot read service definition: {e}"),
    })?;
    parse_str(&origin, &text)
}

/// The largest definition file accepted (1 MiB).
pub const MAX_DEFINITION_BYTES: u64 = 1 << 20;

/// Parses and validates a definition; `origin` names the text in errors.
pub fn parse_str(origin: &str, text: &str) -> Result<Service, DefinitionError> {
    let (raw, index) = deserialize_indexed::<RawService>(origin, text)?;
    let spec_error = |e: SpecError| {
        // A field with no position of its own (nothing at all written) points at the file start.
        let span = index.span_of(&e.field).or(Some(0..0));
        DefinitionError::at(origin, text, span, Some(e.field), e.message)
    };
    let service = raw.into_service().map_err(spec_error)?;
    service.validate().map_err(spec_error)?;
    Ok(service)
}

/// Reads any TOML document (a config file) into `T`, its errors located as a definition's
/// are: `file:line:column: field: message`.
pub fn parse_toml<T: DeserializeOwned>(origin: &str, text: &str) -> Result<T, DefinitionError> {
    deserialize_indexed(origin, text).map(|(value, _)| value)
}

/// `T` from `text`, with the index of its fields' positions (for errors found later).
fn deserialize_indexed<T: DeserializeOwned>(
    origin: &str,
    text: &str,
) -> Result<(T, SpanIndex), DefinitionError> {
    let root = DeTable::parse(text).map_err(|e| toml_error(origin, text, &e, None))?;
    let index = SpanIndex::build(root.get_ref());
    let value = T::deserialize(toml::de::Deserializer::from(root))
        .map_err(|e| toml_error(origin, text, &e, Some(&index)))?;
    Ok((value, index))
}

/// toml's own error (syntax, unknown key, wrong type), keeping its one-line message and not its
/// source excerpt, which our line:column prefix replaces.
fn toml_error(
    origin: &str,
    text: &str,
    e: &toml::de::Error,
    index: Option<&SpanIndex>,
) -> DefinitionError {
    let message = e
        .message()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let span = e.span().or(Some(0..0));
    let field = span
        .as_ref()
        .and_then(|s| index.and_then(|i| i.field_at(s.start)))
        .map(str::to_owned);
    DefinitionError::at(origin, text, span, field, message)
}
