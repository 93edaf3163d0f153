//! Query results: scalars, strings, instant vectors and range vectors (matrices).

use storage::labels::Labels;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series labels (metric name already dropped where PromQL drops it).
    pub metric: Labels,
    /// Timestamp in ms.
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// One series of a range vector or of a range query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Series labels.
    pub metric: Labels,
    /// Points in time order: (timestamp ms, value).
    pub points: Vec<(i64, f64)>,
}

/// The value of a PromQL expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at a time.
    Scalar {
        /// Timestamp in ms.
        t: i64,
        /// Value.
        v: f64,
    },
    /// A string at a time.
    String {
        /// Timestamp in ms.
        t: i64,
        /// The string.
        s: String,
    },
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector, or a range query's result.
    Matrix(Vec<Series>),
}

impl Value {
    /// Prometheus' name for the value type: `scalar`, `string`, `vector` or `matrix`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}
