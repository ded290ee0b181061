//! # scimd-testkit
//!
//! The backend conformance suite: one set of cases that every [`Backend`] — memory, SQLite,
//! PostgreSQL, LDAP — must pass, written against the trait only.
//!
//! - [`cases`]: each rule as a plain `pub async fn`, with a one-line doc stating it
//!   ("A second user with a taken userName, in any letter case, fails with uniqueness …").
//! - [`conformance_tests!`]: generates one `#[tokio::test]` per case for a backend
//!   constructor, so failures are reported per rule.
//! - [`run_all`] / [`run_case`] / [`CASES`]: the same cases as data, for running them by hand.
//! - [`fixtures`]: the suite's [`registry`](fixtures::registry) (built-in schemas plus an
//!   extension with integer, decimal, dateTime, boolean, caseExact and multi-valued attributes),
//!   fresh source names, realistic bodies normalized the way the server does it, and helpers.
//!
//! ## Contract for the backend under test
//! - It is built with [`fixtures::registry()`] as the schema registry of every source.
//! - Every case uses its own new source (random suffix), so cases can share one database and
//!   run in parallel; nothing is cleaned up.
//! - A case is skipped only when [`Backend::capabilities`] says the backend lacks the feature,
//!   and it prints that it was skipped.
//!
//! ## Use
//! In a backend crate's `tests/conformance.rs` (with `tokio` as a dev-dependency, features
//! `macros` and `rt-multi-thread`):
//! ```ignore
//! async fn backend() -> std::sync::Arc<dyn scimd_core::Backend> {
//!     std::sync::Arc::new(MyBackend::new(scimd_testkit::fixtures::registry()))
//! }
//! scimd_testkit::conformance_tests!(backend);
//! ```

#![forbid(unsafe_code)]

pub mod cases;
pub mod fixtures;

use futures::future::BoxFuture;
use scimd_core::Backend;
use std::fmt;
use std::sync::Arc;

/// One conformance case as data.
#[derive(Clone, Copy)]
pub struct Case {
    /// The case's function name, which states its rule.
    pub name: &'static str,
    run: fn(Arc<dyn Backend>) -> BoxFuture<'static, ()>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

impl Case {
    /// Runs the case against a backend; panics when the backend breaks the rule.
    pub async fn run(&self, backend: Arc<dyn Backend>) {
        (self.run)(backend).await
    }
}

/// The suite's cases, named once for [`CASES`] and [`conformance_tests!`]: expands to
/// `$callback! { $args plain: [..], shared: [..] }`. `plain` cases take `&dyn Backend`,
/// `shared` ones the `Arc` (they spawn tasks).
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ([$($callback:tt)*] $($args:tt)*) => {
        $($callback)*! {
            $($args)*
            plain: [
                create_stores_the_resource_as_sent,
                create_group_stores_display_name_and_members,
                unknown_ids_are_not_found,
                replace_overwrites_every_attribute,
                patch_changes_only_the_targeted_attributes,
                failed_patch_changes_nothing,
                delete_removes_the_resource,
                replace_group_stores_the_new_state,
                import_keeps_ids_all_or_none,
                user_name_is_unique_case_insensitively,
                user_name_uniqueness_is_unicode_aware,
                same_user_name_in_two_sources_is_allowed,
                rename_to_a_taken_user_name_fails,
                released_user_names_can_be_reused,
                versions_start_at_one_and_increment_per_change,
                stale_expected_version_fails,
                unchanged_patch_keeps_the_version,
                filter_string_operators_respect_case_exactness,
                filter_date_times_compare_as_instants,
                filter_on_meta_timestamps,
                filter_booleans_compare_by_value,
                filter_numbers_compare_numerically,
                filter_multi_valued_attributes_match_any_value,
                filter_value_paths_match_within_one_value,
                filter_extension_attributes,
                filter_logical_operators_follow_precedence,
                filter_present_matches_attributes_with_values,
                filter_by_id_and_external_id,
                filter_groups_by_members,
                filter_users_by_derived_groups,
                filter_results_equal_the_reference_evaluator,
                sort_orders_like_the_reference,
                sort_applies_to_filtered_results,
                index_paging_slices_the_ordered_results,
                cursor_paging_visits_every_resource_once,
                cursor_paging_walks_backward,
                paging_counts_only_matches,
                members_are_stored_with_type_and_display,
                members_must_exist_in_the_same_source,
                patch_adds_and_removes_members,
                patch_replace_members_replaces_the_list,
                patch_of_other_attributes_keeps_members,
                user_groups_are_derived_from_memberships,
                deleting_a_user_removes_it_from_every_group,
                deleting_a_group_removes_its_memberships,
                replace_without_members_empties_the_group,
                load_controls_relations,
                sources_are_isolated,
            ],
            shared: [
                concurrent_member_patches_lose_nothing,
                concurrent_replaces_have_one_winner_per_version,
                concurrent_creates_admit_one_user_name,
                concurrent_patches_lose_no_update,
            ],
        }
    };
}

macro_rules! case_table {
    (plain: [$($plain:ident),* $(,)?], shared: [$($shared:ident),* $(,)?] $(,)?) => {
        /// Every case of the suite, in a stable order.
        pub const CASES: &[Case] = &[
            $(Case {
                name: stringify!($plain),
                run: |b| Box::pin(async move { cases::$plain(&*b).await }),
            },)*
            $(Case {
                name: stringify!($shared),
                run: |b| Box::pin(cases::$shared(b)),
            },)*
        ];
    };
}

__with_cases!([case_table]);

/// Runs the case named `name`; panics when there is no such case or the backend breaks its
/// rule.
pub async fn run_case(name: &str, backend: Arc<dyn Backend>) {
    match CASES.iter().find(|c| c.name == name) {
        Some(case) => case.run(backend).await,
        None => panic!("no conformance case named {name}"),
    }
}

/// Runs every case in order against one backend, printing each name; panics at the first
/// broken rule. Prefer [`conformance_tests!`], which reports each case separately.
pub async fn run_all(backend: Arc<dyn Backend>) {
    for case in CASES {
        println!("conformance case {}", case.name);
        case.run(backend.clone()).await;
    }
}

/// Generates one `#[tokio::test]` per conformance case, each building its backend with
/// `$make` (a path to an `async fn() -> Arc<dyn Backend>`). The calling crate needs `tokio`
/// with `macros` and `rt-multi-thread`.
///
/// `conformance_tests!(optional $make)` takes an `async fn() -> Option<Arc<dyn Backend>>`
/// instead, for backends whose service may be missing: each case then says it was skipped when
/// `$make` returns `None` (the maker decides whether that is allowed, e.g. not under CI).
#[macro_export]
macro_rules! conformance_tests {
    (optional $make:path) => {
        $crate::conformance_tests!(@list $make; optional);
    };
    ($make:path) => {
        $crate::conformance_tests!(@list $make;);
    };
    (@list $make:path; $($optional:ident)?) => {
        $crate::__with_cases!([$crate::conformance_tests] @split $make; $($optional)?;);
    };
    (@split $make:path; $($optional:ident)?; plain: [$($plain:ident),* $(,)?], shared: [$($shared:ident),* $(,)?] $(,)?) => {
        $crate::conformance_tests!(@cases $make; $($optional)?; $($plain,)* $($shared),*);
    };
    (@cases $make:path; ; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::run_case(stringify!($case), $make().await).await;
            }
        )*
    };
    (@cases $make:path; optional; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                match $make().await {
                    Some(backend) => $crate::run_case(stringify!($case), backend).await,
                    None => eprintln!("skipped {}: the backend's service is not available", stringify!($case)),
                }
            }
        )*
    };
}
