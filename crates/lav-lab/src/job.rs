//! Work too slow for a control change (re-quantizing the model, timing a decode) runs
//! on its own thread. The lab shows a [`Progress`](lav_scene::Progress) item while it
//! runs and the renderer asks again until [`crate::Lab::busy`] is false, so the UI
//! stays responsive. Results are cached by the inputs that produced them.

use crate::error::{LabError, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Shared between a job and the lab: how far it got, and whether it is still wanted.
#[derive(Default)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
    label: Mutex<String>,
    cancelled: AtomicBool,
}

impl Progress {
    pub fn set(&self, done: u64, total: u64, label: impl Into<String>) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        *self.label.lock().expect("progress label") = label.into();
    }

    /// Whether the lab has moved on to other inputs; a job checks this between units
    /// of work and stops early.
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// `Err` when cancelled, for `?` in job loops.
    pub fn check(&self) -> Result<()> {
        if self.cancelled() {
            Err(LabError::Input("cancelled: the inputs changed".into()))
        } else {
            Ok(())
        }
    }

    pub fn snapshot(&self) -> lav_scene::Progress {
        lav_scene::Progress {
            label: self.label.lock().expect("progress label").clone(),
            done: self.done.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
        }
    }
}

/// What a job slot holds for the inputs asked about.
pub enum State<'a, T> {
    Ready(&'a T),
    Running(lav_scene::Progress),
}

/// One cached background computation, keyed by its inputs.
pub struct Job<K, T> {
    key: Option<K>,
    progress: Arc<Progress>,
    handle: Option<JoinHandle<Result<T>>>,
    result: Option<std::result::Result<T, String>>,
}

impl<K, T> Default for Job<K, T> {
    fn default() -> Self {
        Job {
            key: None,
            progress: Arc::new(Progress::default()),
            handle: None,
            result: None,
        }
    }
}

impl<K: PartialEq + Clone, T: Send + 'static> Job<K, T> {
    /// The result for `key`: ready, still running (with its progress), or started now
    /// with `work`. A job for other inputs is cancelled. A failed job's error is
    /// returned (once per key) as the step's error.
    pub fn get(
        &mut self,
        key: &K,
        work: impl FnOnce(&Progress) -> Result<T> + Send + 'static,
    ) -> Result<State<'_, T>> {
        if self.key.as_ref() != Some(key) {
            self.progress.cancelled.store(true, Ordering::Relaxed);
            let progress = Arc::new(Progress::default());
            let p = progress.clone();
            self.handle = Some(std::thread::spawn(move || work(&p)));
            self.progress = progress;
            self.key = Some(key.clone());
            self.result = None;
        }
        if self.handle.as_ref().is_some_and(|h| h.is_finished()) {
            let h = self.handle.take().expect("checked");
            self.result = Some(match h.join() {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("the computation failed unexpectedly".into()),
            });
        }
        match &self.result {
            Some(Ok(v)) => Ok(State::Ready(v)),
            Some(Err(e)) => Err(LabError::Input(e.clone())),
            None => Ok(State::Running(self.progress.snapshot())),
        }
    }

    /// Whether a job is running or has finished without being collected.
    pub fn busy(&self) -> bool {
        self.handle.is_some()
    }

    /// The last result, if it is for `key` and ready.
    pub fn ready(&self, key: &K) -> Option<&T> {
        match (&self.key, &self.result) {
            (Some(k), Some(Ok(v))) if k == key => Some(v),
            _ => None,
        }
    }
}

impl<K, T> Drop for Job<K, T> {
    fn drop(&mut self) {
        self.progress.cancelled.store(true, Ordering::Relaxed);
    }
}

/// The progress item a step shows while its job runs.
pub fn progress_item(id: &str, title: &str, p: lav_scene::Progress) -> lav_scene::Item {
    lav_scene::Item::new(
        id,
        title,
        lav_scene::Provenance::computed("running on this machine"),
        lav_scene::Primitive::Progress(p),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn runs_once_per_key_and_reports_progress() {
        let mut j: Job<u32, u32> = Job::default();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Mutex::new(rx);
        let s = j
            .get(&1, move |p| {
                p.set(1, 2, "half");
                rx.lock().unwrap().recv().unwrap();
                Ok(10)
            })
            .unwrap();
        assert!(matches!(s, State::Running(_)));
        assert!(j.busy());
        tx.send(()).unwrap();
        let v = loop {
            match j.get(&1, |_| panic!("must not rerun")).unwrap() {
                State::Ready(v) => break *v,
                State::Running(p) => {
                    assert!(p.total == 0 || p.done == 1);
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        assert_eq!(v, 10);
        assert!(!j.busy());
        assert_eq!(j.ready(&1), Some(&10));
        assert_eq!(j.ready(&2), None);
    }

    #[test]
    fn a_new_key_cancels_the_old_job_and_errors_surface() {
        let mut j: Job<u32, u32> = Job::default();
        let _ = j.get(&1, move |p| {
            while !p.cancelled() {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(LabError::Input("stopped".into()))
        });
        let r = loop {
            match j.get(&2, |_| Err(LabError::Input("bad input".into()))) {
                Ok(State::Running(_)) => std::thread::sleep(Duration::from_millis(2)),
                Ok(State::Ready(_)) => panic!("must fail"),
                Err(e) => break e.to_string(),
            }
        };
        assert_eq!(r, "bad input");
    }
}
