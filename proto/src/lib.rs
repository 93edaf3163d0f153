//! Protobuf definitions and generated code (Thanos StoreAPI, Prometheus remote read, Strata's
//! cluster services). Empty until the query path needs them.
