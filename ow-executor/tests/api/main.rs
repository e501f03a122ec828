//! Integration tests: the real `ow-executor` binary over HTTP, with its
//! stdout and stderr captured.
//!
//! One conformance suite, written once: every test is a function of the
//! engine name, and `engine_suite!` runs each on every engine of the binary
//! (`<engine>::<module>::<test>`).

mod abi;
mod chain;
mod compliance;
mod coroutines;
mod corpus;
mod engines;
mod functions;
mod hardening;
mod helpers;
mod hostile;
mod http;
mod image;
mod limits;
mod multi_action;
mod oci;
mod openwhisk_client;
mod precompiled;
mod redis;
mod state;
mod stress;
mod two_hosts;

/// Generate `mod <engine> { mod <module> { #[test] fn <test>() } }` for each engine.
macro_rules! engine_suite {
    ($($module:ident: [$($test:ident),* $(,)?]),* $(,)?) => {
        engine_suite!(@engine wasmtime; $($module: [$($test),*]),*);
        engine_suite!(@engine wasmer; $($module: [$($test),*]),*);
        engine_suite!(@engine wamr; $($module: [$($test),*]),*);
    };
    (@engine $engine:ident; $($module:ident: [$($test:ident),*]),*) => {
        mod $engine {
            $(mod $module {
                $(#[test]
                fn $test() {
                    crate::$module::$test(stringify!($engine));
                })*
            })*
        }
    };
}

engine_suite! {
    chain: [
        every_path_gives_the_same_results,
        functions_call_functions_of_their_namespace_only,
        limits_cycles_and_codes,
        failing_callees_and_a_caller_out_of_time
    ],
    functions: [
        faas_lifecycle_on_every_engine,
        wasmengine_benchmark_functions_answer
    ],
    coroutines: [
        a_cpu_bound_guest_cannot_starve_the_others
    ],
    stress: [
        a_thousand_activations_across_ten_actions
    ],
    hardening: [
        an_initialize_with_results_is_refused_at_init,
        a_guest_asleep_past_its_limit_gives_its_slot_back,
        a_guest_spinning_while_it_is_instantiated_gives_its_slot_back,
        a_huge_max_duration_does_not_overflow
    ],
    hostile: [
        infinite_loop_is_stopped_while_others_are_served,
        memory_bomb_is_refused_at_the_cap,
        stack_bomb_traps,
        unreachable_traps,
        oversized_result_is_refused,
        log_flood_is_cut_with_a_notice,
        exit_in_the_middle_is_an_action_error,
        clock_sleep_works,
        the_sandbox_shows_no_host_files_or_environment,
        a_sleep_past_the_time_limit_is_answered_in_time,
        an_action_may_lower_its_own_limits,
        sigterm_lets_the_in_flight_activation_finish_then_exits_0,
        a_scratch_directory_is_private_to_each_activation_and_removed,
        table_and_stack_limits_are_flags,
        memory_bomb_does_not_disturb_other_activations
    ],
    compliance: [
        init_with_empty_code_fails,
        init_with_empty_object_fails_with_the_exact_message,
        non_dictionary_result_is_an_error_with_one_sentinel_per_stream,
        second_init_is_refused_and_logged_without_sentinels,
        entry_point_niam_is_honoured,
        echo_four_times_with_logs_and_four_sentinels,
        unicode_in_params_result_and_logs,
        init_env_is_visible_to_the_action,
        activation_context_reaches_the_environment,
        large_input_is_echoed_exactly,
        application_error_is_passed_through,
        arrays_in_and_out,
        invalid_zip_fails_init_cleanly_and_a_valid_action_can_follow,
        run_before_init_is_refused,
        concurrent_runs_succeed_with_contiguous_sentinels,
        the_executor_prints_nothing_of_its_own
    ],
    abi: [
        sdk_module_add_and_its_application_error,
        hash_is_blake3_chained,
        command_module_reads_stdin_and_answers_on_its_last_line,
        command_module_non_zero_exit_is_an_action_error_with_logs,
        command_module_without_output_did_not_return_a_dictionary,
        missing_entry_point_fails_init_naming_it,
        wrong_entry_signature_fails_init,
        sdk_module_without_memory_fails_init,
        module_following_neither_abi_fails_init,
        invalid_wasm_and_unknown_imports_fail_init,
        result_pointer_past_memory_is_an_action_error,
        alloc_returning_a_bad_buffer_is_an_action_error,
        result_that_is_not_utf8_or_not_json_is_an_action_error,
        a_trap_is_an_action_error_and_the_executor_survives,
        initialize_runs_before_the_entry_point,
        every_activation_gets_a_fresh_instance,
        time_limit_interrupts_an_infinite_loop
    ],
    http: [
        malformed_json_is_a_400_with_a_json_error,
        bad_base64_is_a_400_and_text_code_is_refused,
        raw_wasm_is_accepted_without_the_binary_flag,
        zipped_action_is_accepted,
        unknown_paths_and_methods_get_json_errors,
        oversized_bodies_get_413
    ],
    multi_action: [
        two_actions_side_by_side_then_destroy,
        second_init_of_a_container_is_refused
    ],
    state: [
        every_function_on_both_tiers,
        namespaces_never_see_each_other,
        abi_violations_end_the_activation_with_502,
        locks_are_released_when_the_holder_traps_or_times_out,
        a_lock_wait_ends_with_minus_4_before_the_deadline,
        snapshots_give_the_same_results_as_without
    ]
}

/// Executor-level behaviour that no engine changes: run on the default one.
mod executor {
    #[test]
    fn two_hosts_in_network_namespaces_chain_share_state_and_survive_a_dead_peer() {
        crate::two_hosts::chain_state_and_a_dead_peer();
    }

    #[test]
    fn the_state_upload_endpoint_needs_the_operator_token() {
        crate::state::the_upload_endpoint_needs_the_operator_token();
    }

    #[test]
    fn a_state_lock_of_a_killed_executor_expires_with_its_lease() {
        crate::state::a_lock_of_a_killed_executor_expires_with_its_lease();
    }

    #[test]
    fn redis_down_gives_minus_3_promptly_and_loses_no_acknowledged_write() {
        crate::state::redis_down_gives_minus_3_promptly_and_loses_no_acknowledged_write();
    }

    #[test]
    fn two_executors_sharing_redis_lose_no_update() {
        crate::state::two_executors_sharing_redis_lose_no_update();
    }

    #[test]
    fn a_thousand_sleeping_activations_hold_no_thread_each() {
        crate::coroutines::a_thousand_sleeping_activations_hold_no_thread_each();
    }

    #[test]
    fn calls_through_the_openwhisk_api_need_the_activation_s_key() {
        crate::chain::calls_through_the_openwhisk_api_need_the_activation_s_key();
    }

    #[test]
    fn ten_thousand_awaiting_callers_hold_no_thread_each() {
        crate::coroutines::ten_thousand_awaiting_callers_hold_no_thread_each();
    }

    #[test]
    fn ten_thousand_sleeping_activations_fit_in_little_memory() {
        crate::coroutines::ten_thousand_sleeping_activations_fit_in_little_memory();
    }

    #[test]
    fn sigterm_waits_for_an_activation_longer_than_30_seconds() {
        crate::hardening::sigterm_waits_for_an_activation_longer_than_30_seconds("wasmtime");
    }

    #[test]
    fn the_memory_budget_admits_what_fits_and_refuses_the_rest_with_429() {
        crate::hardening::the_memory_budget_admits_what_fits_and_refuses_the_rest_with_429(
            "wasmtime",
        );
    }
}

mod store {
    #[test]
    fn faas_status_codes() {
        crate::functions::faas_status_codes();
    }
    #[test]
    fn wasmengine_routes() {
        crate::functions::wasmengine_routes();
    }
    #[test]
    fn images_from_a_real_registry() {
        crate::functions::images_from_a_real_registry();
    }
    #[test]
    fn hostile_images_are_refused() {
        crate::functions::hostile_images_are_refused();
    }
    #[test]
    fn other_namespaces_are_refused() {
        crate::functions::other_namespaces_are_refused();
    }
    #[test]
    fn no_auth_only_on_loopback() {
        crate::functions::no_auth_only_on_loopback();
    }
    #[test]
    fn a_thousand_functions_survive_a_restart() {
        crate::functions::a_thousand_functions_survive_a_restart();
    }
    #[test]
    fn kill_9_during_a_burst_of_deploys_loses_no_acknowledged_write() {
        crate::functions::kill_9_during_a_burst_of_deploys_loses_no_acknowledged_write();
    }
}
