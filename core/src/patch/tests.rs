//! Tests of the PATCH engine.
