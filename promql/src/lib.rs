//! PromQL evaluation over a `Queryable`. Not built yet: see the PromQL issue.
