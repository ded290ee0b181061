//! Micro-benchmarks of filter pushdown: how long turning a parsed and resolved SCIM filter into
//! one parameterized SQL condition takes, per dialect, for the lookup identity providers send
//! most (`userName eq`) and for a filter that exercises every part of the translator (`and`,
//! `or`, `not`, a value path over a multi-valued attribute, enterprise and custom extension
//! attributes, dateTime comparisons, substring operators).
//!
//! Run with `cargo bench -p scimd-backend-sql --bench filter` (add a name filter after `--`).

use criterion::{Criterion, criterion_group, criterion_main};
use scimd_backend_sql::{Dialect, translate_filter};
use scimd_core::ResourceKind;
use scimd_core::filter::Filter;
use std::hint::black_box;

const SIMPLE: &str = r#"userName eq "bjensen@example.com""#;

const COMPLEX: &str = concat!(
    r#"(userName sw "bjen" or not (displayName co "Jensen")) "#,
    r#"and emails[type eq "work" and value co "@example.com"] "#,
    r#"and urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Engineering" "#,
    r#"and urn:scimd:params:scim:schemas:extension:conformance:2.0:User:hired gt "2024-01-01T00:00:00+02:00" "#,
    r#"and meta.lastModified ge "2025-06-01T12:00:00Z" and not (active eq false)"#
);

fn resolved(text: &str) -> Filter {
    let reg = scimd_testkit::fixtures::registry();
    Filter::parse(text)
        .and_then(|f| f.resolve(reg.resource_type(ResourceKind::User)))
        .unwrap_or_else(|e| panic!("benchmark filter {text:?}: {e}"))
}

fn translation(c: &mut Criterion) {
    let reg = scimd_testkit::fixtures::registry();
    let rt = reg.resource_type(ResourceKind::User);
    let mut g = c.benchmark_group("translate");
    for (name, text) in [("simple", SIMPLE), ("complex", COMPLEX)] {
        let f = resolved(text);
        for (dialect, d) in [("sqlite", Dialect::Sqlite), ("postgres", Dialect::Postgres)] {
            let (sql, params) = translate_filter(d, rt, "bench", &f)
                .unwrap_or_else(|e| panic!("{name} on {dialect}: {e}"));
            eprintln!(
                "{name}/{dialect}: {} bytes of SQL, {params} parameters",
                sql.len()
            );
            g.bench_function(format!("{name}/{dialect}"), |b| {
                b.iter(|| translate_filter(d, rt, black_box("bench"), black_box(&f)))
            });
        }
    }
    g.finish();
    // What a query pays before any I/O: parse, resolve against the schemas, translate.
    c.bench_function("parse_resolve_translate/complex/sqlite", |b| {
        b.iter(|| {
            let f = Filter::parse(black_box(COMPLEX)).and_then(|f| f.resolve(rt));
            f.map(|f| translate_filter(Dialect::Sqlite, rt, "bench", &f))
        })
    });
}

criterion_group!(benches, translation);
criterion_main!(benches);
