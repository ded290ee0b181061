//! The conformance cases. Each is a plain `pub async fn` taking the backend under test, with a
//! one-line doc stating the rule it checks; each uses its own fresh source.
//!
//! Cases that spawn concurrent tasks take an `Arc<dyn Backend>`; all others take
//! `&dyn Backend`.

mod concurrency;
mod crud;
mod differential;
mod filters;
mod membership;
mod paging;
mod uniqueness;
mod versions;

pub use concurrency::*;
pub use crud::*;
pub use differential::{
    CORPUS_USERS, corpus_filters, corpus_group_filters, corpus_user,
    filter_results_equal_the_reference_evaluator,
};
pub use filters::{
    filter_booleans_compare_by_value, filter_by_id_and_external_id,
    filter_date_times_compare_as_instants, filter_extension_attributes, filter_groups_by_members,
    filter_logical_operators_follow_precedence, filter_multi_valued_attributes_match_any_value,
    filter_numbers_compare_numerically, filter_on_meta_timestamps,
    filter_present_matches_attributes_with_values, filter_string_operators_respect_case_exactness,
    filter_users_by_derived_groups, filter_value_paths_match_within_one_value,
};
pub use membership::*;
pub use paging::*;
pub use uniqueness::*;
pub use versions::*;
