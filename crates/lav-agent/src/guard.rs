//! The lethal-trifecta guard (Willison's "lethal trifecta": private data, untrusted
//! content, and a way to send data out). Each tool is labelled with what it brings
//! into the context or does; the guard tracks taint as the run goes, and once both
//! private data and untrusted content have entered the context it refuses every
//! exfiltration tool, with a reason the model and the trace can see.

use crate::agent::{ToolCall, ToolResult, ToolSpec, Tools};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Its results contain the user's private data.
    PrivateData,
    /// Its results contain text from outside (web pages, documents, email).
    UntrustedContent,
    /// It can send data out of the machine.
    Exfiltration,
    /// None of the three.
    Plain,
}

/// A decision the guard took, for the trace and the lab.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub call: ToolCall,
    pub reason: String,
}

/// Wraps the agent's tools with taint tracking.
pub struct Guarded<T: Tools> {
    pub inner: T,
    labels: BTreeMap<String, Capability>,
    pub enabled: bool,
    /// The calls that brought private data / untrusted content in (first of each).
    pub private_from: Option<String>,
    pub untrusted_from: Option<String>,
    pub refusals: Vec<Refusal>,
}

impl<T: Tools> Guarded<T> {
    /// `labels` names each tool's capability; unlabelled tools are treated as able to
    /// exfiltrate, since a guard that trusts what it does not know guards nothing.
    pub fn new(inner: T, labels: &[(&str, Capability)], enabled: bool) -> Self {
        Guarded {
            inner,
            labels: labels.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
            enabled,
            private_from: None,
            untrusted_from: None,
            refusals: Vec::new(),
        }
    }

    pub fn capability(&self, tool: &str) -> Capability {
        self.labels
            .get(tool)
            .copied()
            .unwrap_or(Capability::Exfiltration)
    }

    /// Whether all three legs are present among the tools held.
    pub fn trifecta(&self) -> bool {
        let names: Vec<String> = self.inner.list().into_iter().map(|s| s.name).collect();
        let has = |c| names.iter().any(|n| self.capability(n) == c);
        has(Capability::PrivateData)
            && has(Capability::UntrustedContent)
            && has(Capability::Exfiltration)
    }

    pub fn tainted(&self) -> bool {
        self.private_from.is_some() && self.untrusted_from.is_some()
    }
}

impl<T: Tools> Tools for Guarded<T> {
    fn list(&self) -> Vec<ToolSpec> {
        self.inner.list()
    }

    fn call(&mut self, call: &ToolCall) -> ToolResult {
        let cap = self.capability(&call.name);
        if self.enabled && cap == Capability::Exfiltration && self.tainted() {
            let reason = format!(
                "blocked by the trifecta guard: the context holds private data (from {}) and untrusted content (from {}), so {} may not send anything out",
                self.private_from.as_deref().unwrap_or("?"),
                self.untrusted_from.as_deref().unwrap_or("?"),
                call.name
            );
            self.refusals.push(Refusal {
                call: call.clone(),
                reason: reason.clone(),
            });
            return ToolResult {
                content: reason,
                is_error: true,
            };
        }
        let r = self.inner.call(call);
        // Taint comes from what entered the context: a failed call brought nothing.
        if !r.is_error {
            match cap {
                Capability::PrivateData if self.private_from.is_none() => {
                    self.private_from = Some(call.name.clone());
                }
                Capability::UntrustedContent if self.untrusted_from.is_none() => {
                    self.untrusted_from = Some(call.name.clone());
                }
                _ => {}
            }
        }
        r
    }
}
