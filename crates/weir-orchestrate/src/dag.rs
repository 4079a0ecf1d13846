//! The run state machine, as pure functions over task states, so it can be tested on random DAGs without a clock,
//! a store or a process: which waiting tasks become queued, skipped or upstream_failed, and when a run is over.
//!
//! A task instance moves `none → queued → running → success | failed | up_for_retry`, and `up_for_retry → queued`
//! when its wait is over. A waiting task is decided only from its upstreams' states and its trigger rule:
//! `all_success` (every upstream succeeded or was skipped... see [`decide`]), `all_done`, `one_failed`.

use std::fmt;
use std::str::FromStr;

use weir_config::TriggerRule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Waiting for its upstream tasks.
    None,
    Queued,
    Running,
    Success,
    Failed,
    UpForRetry,
    UpstreamFailed,
    Skipped,
}

impl TaskState {
    pub const ALL: [TaskState; 8] = [
        TaskState::None,
        TaskState::Queued,
        TaskState::Running,
        TaskState::Success,
        TaskState::Failed,
        TaskState::UpForRetry,
        TaskState::UpstreamFailed,
        TaskState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::None => "none",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Failed => "failed",
            TaskState::UpForRetry => "up_for_retry",
            TaskState::UpstreamFailed => "upstream_failed",
            TaskState::Skipped => "skipped",
        }
    }

    /// The task will not change again (unless cleared).
    pub fn is_finished(self) -> bool {
        matches!(self, TaskState::Success | TaskState::Failed | TaskState::UpstreamFailed | TaskState::Skipped)
    }

    fn is_failure(self) -> bool {
        matches!(self, TaskState::Failed | TaskState::UpstreamFailed)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TaskState::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| format!("unknown task state `{s}`"))
    }
}

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    Queued,
    Running,
    Success,
    Failed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [RunState::Queued, RunState::Running, RunState::Success, RunState::Failed]
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown run state `{s}`"))
    }
}

/// A DAG's shape: each task's upstream indices and trigger rule.
#[derive(Debug, Clone)]
pub struct Dag {
    pub names: Vec<String>,
    pub upstream: Vec<Vec<usize>>,
    pub rules: Vec<TriggerRule>,
}

impl Dag {
    pub fn from_pipeline(p: &weir_config::Pipeline) -> Dag {
        let names: Vec<String> = p.tasks.iter().map(|t| t.name.clone()).collect();
        let upstream = p
            .tasks
            .iter()
            .map(|t| t.depends_on.iter().filter_map(|d| names.iter().position(|n| n == d)).collect())
            .collect();
        Dag { upstream, rules: p.tasks.iter().map(|t| t.trigger_rule).collect(), names }
    }

    /// Every task downstream of `task` (not itself), for `clear`.
    pub fn downstream_of(&self, task: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = vec![task];
        while let Some(t) = stack.pop() {
            for (i, ups) in self.upstream.iter().enumerate() {
                if ups.contains(&t) && !out.contains(&i) {
                    out.push(i);
                    stack.push(i);
                }
            }
        }
        out.sort_unstable();
        out
    }
}

/// What a waiting task (`none`) becomes given its upstreams' states, or None to keep waiting.
///
/// - `all_success`: queued when every upstream succeeded or was skipped (and at least one succeeded, or it has
///   none); upstream_failed as soon as one failed; skipped when all were skipped.
/// - `all_done`: queued when every upstream is finished.
/// - `one_failed`: queued as soon as one upstream failed; skipped when all finished without a failure.
pub fn decide(rule: TriggerRule, upstream: &[TaskState]) -> Option<TaskState> {
    let all_finished = upstream.iter().all(|s| s.is_finished());
    let any_failed = upstream.iter().any(|s| s.is_failure());
    match rule {
        TriggerRule::AllSuccess => {
            if any_failed {
                Some(TaskState::UpstreamFailed)
            } else if !all_finished {
                None
            } else if !upstream.is_empty() && upstream.iter().all(|s| *s == TaskState::Skipped) {
                Some(TaskState::Skipped)
            } else {
                Some(TaskState::Queued)
            }
        }
        TriggerRule::AllDone => all_finished.then_some(TaskState::Queued),
        TriggerRule::OneFailed => {
            if any_failed {
                Some(TaskState::Queued)
            } else if all_finished {
                Some(TaskState::Skipped)
            } else {
                None
            }
        }
    }
}

/// The transitions of waiting tasks, applied until nothing changes (a skip or upstream failure cascades down in
/// one call). Returns (task index, new state) in the order they were decided.
pub fn advance(dag: &Dag, states: &mut [TaskState]) -> Vec<(usize, TaskState)> {
    let mut changes = Vec::new();
    loop {
        let mut changed = false;
        for i in 0..states.len() {
            if states[i] != TaskState::None {
                continue;
            }
            let ups: Vec<TaskState> = dag.upstream[i].iter().map(|&u| states[u]).collect();
            if let Some(next) = decide(dag.rules[i], &ups) {
                states[i] = next;
                changes.push((i, next));
                changed = true;
            }
        }
        if !changed {
            return changes;
        }
    }
}

/// The run's state once every task is finished: failed when any task failed (or could not run because one did),
/// else success. None while a task is still waiting, queued, running or up for retry.
pub fn run_outcome(states: &[TaskState]) -> Option<RunState> {
    if !states.iter().all(|s| s.is_finished()) {
        return None;
    }
    Some(if states.iter().any(|s| s.is_failure()) { RunState::Failed } else { RunState::Success })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use TaskState::*;

    fn rule(n: u8) -> TriggerRule {
        match n % 5 {
            0..=2 => TriggerRule::AllSuccess,
            3 => TriggerRule::AllDone,
            _ => TriggerRule::OneFailed,
        }
    }

    /// A random DAG (edges only from lower to higher index, so acyclic), a retry budget per task, and for each
    /// task the outcomes of its attempts in order (true: success).
    fn dags() -> impl Strategy<Value = (Dag, Vec<u32>, Vec<Vec<bool>>)> {
        (1usize..14).prop_flat_map(|n| {
            (
                proptest::collection::vec(proptest::collection::vec(any::<bool>(), n), n),
                proptest::collection::vec(any::<u8>(), n),
                proptest::collection::vec(0u32..3, n),
                proptest::collection::vec(proptest::collection::vec(proptest::bool::weighted(0.7), 4), n),
            )
                .prop_map(move |(edges, rules, retries, outcomes)| {
                    let upstream = (0..n)
                        .map(|j| (0..j).filter(|&i| edges[i][j] && (i + j) % 3 != 0).collect::<Vec<_>>())
                        .collect();
                    let dag = Dag {
                        names: (0..n).map(|i| format!("t{i}")).collect(),
                        upstream,
                        rules: rules.into_iter().map(rule).collect(),
                    };
                    (dag, retries, outcomes)
                })
        })
    }

    proptest! {
        /// Simulates the scheduler: every step advances waiting tasks, runs one queued task (in a random-ish order)
        /// with its next scripted outcome, and retries failures within budget.
        #[test]
        fn every_run_ends_and_no_task_starts_early((dag, retries, outcomes) in dags(), pick in any::<u64>()) {
            let n = dag.names.len();
            let mut states = vec![None; n];
            let mut attempts = vec![0u32; n];
            let mut steps = 0;
            loop {
                advance(&dag, &mut states);
                if let Some(outcome) = run_outcome(&states) {
                    // Every task ended; a run fails exactly when some task failed or could not run.
                    prop_assert_eq!(outcome == RunState::Failed, states.iter().any(|s| matches!(s, Failed | UpstreamFailed)));
                    break;
                }
                for s in states.iter_mut() {
                    if *s == UpForRetry { *s = Queued; }
                }
                let queued: Vec<usize> = (0..n).filter(|&i| states[i] == Queued).collect();
                prop_assert!(!queued.is_empty(), "stuck: {:?}", states);
                let i = queued[(pick as usize + steps) % queued.len()];
                // The trigger rule held when it was queued, and upstreams never change once finished.
                let ups: Vec<TaskState> = dag.upstream[i].iter().map(|&u| states[u]).collect();
                prop_assert!(ups.iter().all(|s| s.is_finished()) || (dag.rules[i] == TriggerRule::OneFailed && ups.iter().any(|s| s.is_failure())));
                if dag.rules[i] == TriggerRule::AllSuccess {
                    prop_assert!(ups.iter().all(|s| matches!(s, Success | Skipped)));
                }
                states[i] = Running;
                let ok = outcomes[i][attempts[i] as usize % 4];
                attempts[i] += 1;
                states[i] = if ok { Success } else if attempts[i] <= retries[i] { UpForRetry } else { Failed };
                prop_assert!(attempts[i] <= retries[i] + 1, "retries are bounded");
                steps += 1;
                prop_assert!(steps <= n * 4, "the run does not end");
            }
        }
    }

    #[test]
    fn a_failure_cascades_and_cleanup_tasks_still_run() {
        // extract -> transform -> load; cleanup (all_done) and alert (one_failed) after load.
        let dag = Dag {
            names: ["extract", "transform", "load", "cleanup", "alert"].map(String::from).to_vec(),
            upstream: vec![vec![], vec![0], vec![1], vec![2], vec![2]],
            rules: vec![
                TriggerRule::AllSuccess,
                TriggerRule::AllSuccess,
                TriggerRule::AllSuccess,
                TriggerRule::AllDone,
                TriggerRule::OneFailed,
            ],
        };
        let mut states = vec![Failed, None, None, None, None];
        advance(&dag, &mut states);
        assert_eq!(states, [Failed, UpstreamFailed, UpstreamFailed, Queued, Queued]);
        let mut ok = vec![Success, Success, Success, None, None];
        advance(&dag, &mut ok);
        assert_eq!(ok, [Success, Success, Success, Queued, Skipped]);
        assert_eq!(dag.downstream_of(1), [2, 3, 4]);
    }
}
