//! The backend conformance suite on PostgreSQL, in a database of its own (see `support`).
//! Without a PostgreSQL server each case says it was skipped; under `CI=true` it fails.

mod support;

/// One test per conformance case, skipped (with a message) when there is no PostgreSQL.
macro_rules! postgres_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(backend) = support::postgres().await else {
                    eprintln!("skipped {}: no PostgreSQL", stringify!($case));
                    return;
                };
                scimd_testkit::run_case(stringify!($case), std::sync::Arc::new(backend)).await;
            }
        )*

        #[test]
        fn conformance_tests_cover_every_case() {
            scimd_testkit::assert_complete(&[$(stringify!($case)),*]);
        }
    };
}

postgres_cases!(
    create_stores_the_resource_as_sent,
    create_group_stores_display_name_and_members,
    unknown_ids_are_not_found,
    replace_overwrites_every_attribute,
    patch_changes_only_the_targeted_attributes,
    failed_patch_changes_nothing,
    delete_removes_the_resource,
    replace_group_stores_the_new_state,
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
    concurrent_member_patches_lose_nothing,
    concurrent_replaces_have_one_winner_per_version,
    concurrent_creates_admit_one_user_name,
    concurrent_patches_lose_no_update,
);
