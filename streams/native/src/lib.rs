//! leadpulse's compiled hot paths, called from Python (`streams.ingest.routes`).

mod record;
mod timestamp;
mod value;

use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::record::Topic;

/// A valid record's destination: its topic, and its `lead_id` as the Kafka key.
#[pyclass(frozen, module = "streams._native")]
struct Route {
    #[pyo3(get)]
    topic: Py<PyString>,
    #[pyo3(get)]
    lead_id: Py<PyString>,
}

#[pymethods]
impl Route {
    #[new]
    fn new(topic: Py<PyString>, lead_id: Py<PyString>) -> Self {
        Route { topic, lead_id }
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(other) = other.cast::<Route>() else {
            return Ok(false);
        };
        let (py, other) = (other.py(), other.get());
        let same = |a: &Py<PyString>, b: &Py<PyString>| PyAnyMethods::eq(a.bind(py).as_any(), b.bind(py));
        Ok(same(&self.topic, &other.topic)? && same(&self.lead_id, &other.lead_id)?)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("Route(topic={}, lead_id={})", self.topic.bind(py).repr()?, self.lead_id.bind(py).repr()?))
    }
}

/// Routes records to the topics it was made with: one per process, the topics' names from Python's settings.
#[pyclass(frozen, module = "streams._native")]
struct Router {
    leads: Py<PyString>,
    deals: Py<PyString>,
}

#[pymethods]
impl Router {
    #[new]
    fn new(leads_topic: Py<PyString>, deals_topic: Py<PyString>) -> Self {
        Router { leads: leads_topic, deals: deals_topic }
    }

    /// The `Route` of a valid record; None when `streams.events.parse_record` must decide
    /// (it rejects the record, or it may accept a form this check does not read).
    fn route(&self, py: Python<'_>, raw: &[u8], now_ms: i64) -> Option<Route> {
        record::route(raw, now_ms).map(|(topic, lead_id)| Route {
            topic: match topic {
                Topic::Leads => self.leads.clone_ref(py),
                Topic::Deals => self.deals.clone_ref(py),
            },
            lead_id: PyString::new(py, &lead_id).unbind(),
        })
    }
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Route>()?;
    module.add_class::<Router>()
}
