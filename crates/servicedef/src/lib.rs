//! Service definitions: parse a service's TOML file into validated domain types, with errors that
//! name the file, line, column and field.

mod duration;
mod image_ref;
mod model;
mod name;
mod parse;
mod position;
mod raw;
mod validate;

pub use duration::parse_duration_ms;
pub use image_ref::{Image, ImageRef, ImageRefError, ManifestRef};
pub use model::{
    Component, ComponentName, DEFAULT_VCPUS, HealthCheck, NameError, ParseEnumError, Probe,
    RestartPolicy, Route, RouteMode, RuntimeKind, SecretEnv, Service, ServiceName, SpecError,
};
pub use name::MAX_NAME_LEN;
pub use parse::{DefinitionError, MAX_DEFINITION_BYTES, load_file, parse_str, parse_toml};
pub use validate::{
    MAX_CONTAINER_NAME_LEN, MAX_SECRET_NAME_LEN, check_secret_name, validate_node_name,
};
