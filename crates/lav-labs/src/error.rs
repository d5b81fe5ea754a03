use thiserror::Error;

/// Everything that can go wrong opening or driving a lab. Each message is one line
/// that says what to do.
#[derive(Debug, Error)]
pub enum LabError {
    #[error("unknown lab `{id}`; labs: {valid}")]
    UnknownLab { id: String, valid: String },
    #[error("lab `{id}` is planned, not built yet; available: {available}")]
    Planned { id: String, available: String },
    #[error("unknown step `{step}` in lab `{lab}`; steps: {valid}")]
    UnknownStep {
        lab: String,
        step: String,
        valid: String,
    },
    #[error("{0}")]
    Control(String),
    #[error("{0}")]
    Lesson(String),
    #[error(transparent)]
    Model(#[from] lav_model::ModelError),
    #[error("{0}")]
    Input(String),
}

pub type Result<T> = std::result::Result<T, LabError>;
