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
    /// A computation the lab ran failed (the model, a tool, a retriever): its own
    /// one-line error, kept whole. The framework knows no model, so it holds any error.
    #[error(transparent)]
    Compute(Box<dyn std::error::Error + Send + Sync + 'static>),
    #[error("{0}")]
    Input(String),
}

pub type Result<T> = std::result::Result<T, LabError>;

/// `.lab()` turns any computation's error (the model's, a tool's) into a
/// [`LabError::Compute`], so a lab can write `model.forward(..).lab()?`.
pub trait ResultExt<T> {
    fn lab(self) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> ResultExt<T> for std::result::Result<T, E> {
    fn lab(self) -> Result<T> {
        self.map_err(|e| LabError::Compute(Box::new(e)))
    }
}
