//! Cutting a plan into shards, one guest each, of about equal duration; and the shard that
//! carries on after a guest crashed or hung.
//!
//! test_bpf's tests differ a hundredfold in cost (the "all magnitudes" tests at the end of the
//! suite take half of its time), so shards are cut by the tests' recorded durations, not their
//! number. A shard keeps each suite's tests contiguous, so that it runs them with one
//! `test_range` per suite and mode, as few module loads as the cut allows.

use crate::agent::{AgentPlace, AgentRun, AgentSpan};
use crate::cases::Case;
use std::ops::Range;

use crate::durations::{self, Durations};
use crate::model::{Catalog, Filter};
use crate::model::{Mode, Status, Suite, TestResult};
use crate::plan::{ModuleLoad, Plan};

/// What one guest runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shard {
    pub loads: Vec<ModuleLoad>,
    /// The part of the agent's bundle this guest runs, if any: all of it until [`cut_agent`]
    /// cuts it into spans, a span, or the rest of one when this shard resumes a guest that
    /// crashed or hung in the agent. Divergences are found between a case's modes on the
    /// host, whichever guests ran them.
    pub agent: Option<AgentSpan>,
}

impl Shard {
    /// The shard that runs all of `plan` in one guest.
    pub fn whole(plan: &Plan) -> Shard {
        Shard {
            loads: plan.loads.clone(),
            agent: plan.agent.then_some(AgentSpan::WHOLE),
        }
    }

    /// The guest's plan.
    pub fn plan(&self, catalog: Option<&Catalog>) -> Plan {
        Plan {
            loads: self.loads.clone(),
            agent: self.agent.is_some(),
            inject_panic_after_s: None,
            catalog: catalog.cloned(),
        }
    }

    /// What is left to run after the guest that ran this shard crashed or hung on a test
    /// (the first `crash` or `hang` result with a number): the tests after it, in a fresh
    /// guest. `None` when the guest stopped anywhere else (booting, between loads, in the
    /// agent) or nothing is left.
    pub fn resume_after(&self, results: &[TestResult], catalog: &Catalog) -> Option<Shard> {
        let stop = results
            .iter()
            .find(|r| matches!(r.status, Status::Crash | Status::Hang) && r.id.is_some())?;
        let (suite, id) = (stop.suite.kernel()?, stop.id?);
        let at = self.loads.iter().position(|load| {
            load.mode == stop.mode && load.suites.contains(&suite) && selects(load, id)
        })?;
        let load = &self.loads[at];
        let mut loads = Vec::new();
        let last = match load.filter {
            Some(Filter::Range(_, b)) => b,
            None => catalog
                .get(&suite)
                .map_or(0, |t| t.len() as u32)
                .checked_sub(1)?,
            // A single test: nothing of this suite is left.
            Some(_) => id,
        };
        if id < last {
            loads.push(ModuleLoad {
                mode: load.mode,
                suites: vec![suite],
                filter: Some(Filter::Range(id + 1, last)),
            });
        }
        // The suites the crashed load had yet to run.
        let after = load.suites.iter().skip_while(|&&s| s != suite).skip(1);
        loads.extend(after.map(|&s| ModuleLoad {
            mode: load.mode,
            suites: vec![s],
            filter: None,
        }));
        loads.extend(self.loads[at + 1..].iter().cloned());
        let rest = Shard {
            loads,
            agent: self.agent,
        };
        (!rest.loads.is_empty() || rest.agent.is_some()).then_some(rest)
    }

    /// What is left after the guest that ran this shard crashed or hung in the agent
    /// (`run`, over `cases` cases in `modes` modes): the cases after the one in flight, in a
    /// fresh guest. `None` when the agent was not stopped by a crash or hang, or nothing is
    /// left.
    pub fn resume_agent(&self, run: &AgentRun, cases: usize, modes: usize) -> Option<Shard> {
        let span = self.agent?;
        if !matches!(run.stop, Some((Status::Crash | Status::Hang, _))) {
            return None;
        }
        let (case, mode) = run.in_flight(cases, modes)?;
        let rest = span.from(AgentPlace::after(case, mode, cases, modes))?;
        Some(Shard::agent_only(rest))
    }

    /// The agent alone, running `span`: a span of a run's own suites, or what a guest resumed
    /// in the agent runs (the agent runs after every module load, so no load is left).
    pub fn agent_only(span: AgentSpan) -> Shard {
        Shard {
            loads: Vec::new(),
            agent: Some(span),
        }
    }

    /// Whether this shard runs the test of `result` (or, for an entry with no number, the
    /// suite it stands for): a guest resumed with this shard reports it anew.
    pub fn covers(&self, result: &TestResult) -> bool {
        let Some(suite) = result.suite.kernel() else {
            // The agent's suites.
            return self.agent.is_some();
        };
        self.loads.iter().any(|load| {
            load.mode == result.mode
                && load.suites.contains(&suite)
                && result.id.is_none_or(|id| selects(load, id))
        })
    }
}

impl std::fmt::Display for Shard {
    /// `jit test_suite=test_bpf test_range=0,700; interp all suites; agent`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .loads
            .iter()
            .map(|load| match load.params() {
                p if p.is_empty() => format!("{} all suites", load.mode.name()),
                p => format!("{} {p}", load.mode.name()),
            })
            .collect();
        if let Some(span) = self.agent {
            let AgentSpan { start, end } = span;
            let mut agent = String::from("agent");
            if span != AgentSpan::WHOLE {
                agent += &format!(" from mode {} case {}", start.mode, start.skip);
            }
            if let Some(end) = end {
                agent += &format!(" to mode {} case {}", end.mode, end.skip);
            }
            parts.push(agent);
        }
        f.write_str(&parts.join("; "))
    }
}

/// Whether `load` runs the test numbered `id`. A name filter's test is whichever it is: the
/// load is about that one test.
fn selects(load: &ModuleLoad, id: u32) -> bool {
    load.filter
        .as_ref()
        .is_none_or(|filter| filter.selects(Some(id), None) != Some(false))
}

/// What one more module load costs a guest: `finit_module` of the 5 MB test_bpf.ko until its
/// first test, and its summary after the last; 0.15 to 0.25 s under TCG on mips64el (x86_64
/// is quicker).
const LOAD_S: f64 = 0.3;

/// A stretch of one suite in one mode that can be cut anywhere: `(id, seconds)` per test.
struct Stretch {
    mode: Mode,
    suite: Suite,
    tests: Vec<(u32, f64)>,
}

/// Cuts `plan` into at most `n` shards of about equal duration, by `durations`. The cut is a
/// function of its inputs only: the same plan, catalog and durations give the same shards.
/// `agent_cases` is the number of cases in the agent's bundle.
pub fn partition(
    plan: &Plan,
    agent_cases: usize,
    catalog: Option<&Catalog>,
    durations: &Durations,
    n: usize,
) -> Vec<Shard> {
    let n = n.max(1);
    if n == 1 {
        // One guest runs the plan as it stands: one module load per mode, not one per suite.
        return vec![Shard::whole(plan)];
    }
    let (mut whole, stretches) = pieces(plan, agent_cases, catalog, durations);
    let pieces = whole.len() + stretches.iter().map(|s| s.tests.len()).sum::<usize>();
    let n = n.min(pieces).max(1);
    // The loads are part of the work to share: one per stretch, and one more at each cut
    // between two shards. Left out, the shard that gets the short suites at the end (a load
    // each) finishes last.
    let total: f64 = whole.iter().map(|w| w.0).sum::<f64>()
        + stretches
            .iter()
            .flat_map(|s| s.tests.iter().map(|t| t.1))
            .sum::<f64>()
        + LOAD_S * (stretches.len() + n - 1) as f64;
    let mut shards = vec![Shard::default(); n];
    let mut load = vec![0.0f64; n];
    // The uncuttable pieces first, largest first, each to the lightest shard.
    whole.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (seconds, piece) in whole {
        let lightest = (0..n)
            .min_by(|&a, &b| load[a].total_cmp(&load[b]))
            .unwrap_or(0);
        load[lightest] += seconds;
        match piece {
            Some(module_load) => shards[lightest].loads.push(module_load),
            None => shards[lightest].agent = Some(AgentSpan::WHOLE),
        }
    }
    // Then the tests in order, each shard filled up to its share.
    let share = total / n as f64;
    let mut shard = 0;
    for stretch in &stretches {
        let mut start: Option<u32> = None;
        let mut end = 0;
        for &(id, seconds) in &stretch.tests {
            // Move on once this shard is full: when adding the test overshoots its share by
            // more than half the test.
            if shard + 1 < n && load[shard] + seconds / 2.0 > share {
                if let Some(a) = start.take() {
                    shards[shard].loads.push(range_load(stretch, a, end));
                }
                shard += 1;
                while shard + 1 < n && load[shard] >= share {
                    shard += 1;
                }
            }
            if start.is_none() {
                start = Some(id);
                load[shard] += LOAD_S;
            }
            end = id;
            load[shard] += seconds;
        }
        if let Some(a) = start {
            shards[shard].loads.push(range_load(stretch, a, end));
        }
    }
    shards.retain(|s| !s.loads.is_empty() || s.agent.is_some());
    shards
}

/// The most cases a span of the agent's runs. A guest holds what its programs made the
/// kernel touch: x86_64 Debian 7.2's conformance suite (555 cases) peaked at 146 MiB in one
/// guest, at 98 and 140 in two.
const MAX_SPAN_CASES: usize = 320;

/// The most instructions a span's programs have, but for a single larger one. Large
/// programs drive a guest's peak: one of conformance's two 32K-instruction programs takes a
/// 7.2 guest to 134 MiB alone; the half of the suite that has both, and two of 15K, to 144.
const MAX_SPAN_INSNS: usize = 40_000;

/// Takes the agent out of `shards` (its whole bundle, where `partition` put it) and gives it
/// back as one shard per suite and mode (a long suite in parts), in a fresh guest each: a
/// guest holds what its own span made the kernel touch, not what every case before it did
/// (x86_64 Debian 7.2's own suites in one guest peaked at 198 MiB, in spans at 142.5), and
/// the spans run side by side. `cases` are the bundle's, in order. Longest first,
/// by `durations`, after the module's shards: the pool takes shards in order.
pub fn cut_agent(
    mut shards: Vec<Shard>,
    cases: &[Case],
    modes: &[Mode],
    durations: &Durations,
) -> Vec<Shard> {
    let whole = shards.iter().any(|s| s.agent == Some(AgentSpan::WHOLE));
    if !whole || cases.is_empty() {
        return shards;
    }
    for shard in &mut shards {
        shard.agent = None;
    }
    shards.retain(|s| !s.loads.is_empty());
    let mut spans: Vec<(f64, AgentSpan)> = Vec::new();
    for (index, &mode) in modes.iter().enumerate() {
        for run in runs_of(cases) {
            let start = AgentPlace {
                mode: index,
                skip: run.start,
            };
            let in_mode = (run.end < cases.len()).then_some(AgentPlace {
                mode: index,
                skip: run.end,
            });
            let next_mode = (index + 1 < modes.len()).then(|| AgentPlace::mode_start(index + 1));
            let span = AgentSpan {
                start,
                end: in_mode.or(next_mode),
            };
            spans.push((durations.agent(mode, run.len()), span));
        }
    }
    // Stable: spans of equal time keep the bundle's order.
    spans.sort_by(|a, b| b.0.total_cmp(&a.0));
    shards.extend(spans.into_iter().map(|(_, span)| Shard::agent_only(span)));
    shards
}

/// The bundle's cases in runs of one suite each, a long suite's in about equal parts of at
/// most [`MAX_SPAN_CASES`], and a part cut early before it passes [`MAX_SPAN_INSNS`]
/// instructions (a larger case stands alone).
fn runs_of(cases: &[Case]) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut first = 0;
    while let Some(suite) = cases.get(first).map(|c| c.suite) {
        let len = cases[first..]
            .iter()
            .take_while(|c| c.suite == suite)
            .count();
        let size = len.div_ceil(len.div_ceil(MAX_SPAN_CASES));
        let (mut start, mut insns) = (first, 0);
        for (id, case) in cases.iter().enumerate().skip(first).take(len) {
            let more: usize = case.progs.iter().map(|p| p.insns.len()).sum();
            if id > start && (id - start == size || insns + more > MAX_SPAN_INSNS) {
                runs.push(start..id);
                (start, insns) = (id, 0);
            }
            insns += more;
        }
        runs.push(start..first + len);
        first += len;
    }
    runs
}

/// A plan's work: the pieces that cannot be cut, with their durations, and the stretches of
/// tests that can.
#[allow(clippy::type_complexity, reason = "a private pair of lists")]
fn pieces(
    plan: &Plan,
    agent_cases: usize,
    catalog: Option<&Catalog>,
    durations: &Durations,
) -> (Vec<(f64, Option<ModuleLoad>)>, Vec<Stretch>) {
    // Pieces that cannot be cut: the agent's bundle, loads of one named test, and loads of
    // suites the module's list does not name.
    let mut whole: Vec<(f64, Option<ModuleLoad>)> = Vec::new();
    if plan.agent {
        let modes: Vec<Mode> = Mode::ALL.to_vec();
        // Its modes are not in the plan; the worst case keeps the agent's shard light enough.
        let seconds = modes
            .iter()
            .map(|&m| durations.agent(m, agent_cases))
            .fold(0.0, f64::max);
        whole.push((seconds * 3.0, None));
    }
    let mut stretches = Vec::new();
    for load in &plan.loads {
        for &suite in &load.suites {
            let names = catalog.and_then(|c| c.get(&suite));
            let single = ModuleLoad {
                mode: load.mode,
                suites: vec![suite],
                filter: load.filter.clone(),
            };
            match (names, &load.filter) {
                (Some(names), None | Some(Filter::Range(..))) => {
                    let tests: Vec<(u32, f64)> = names
                        .iter()
                        .enumerate()
                        .map(|(id, name)| (id as u32, name))
                        .filter(|(id, _)| selects(load, *id))
                        .map(|(id, name)| (id, durations.test(load.mode, suite.name(), name)))
                        .collect();
                    if !tests.is_empty() {
                        stretches.push(Stretch {
                            mode: load.mode,
                            suite,
                            tests,
                        });
                    }
                }
                _ => whole.push((durations::UNKNOWN_TEST_S, Some(single))),
            }
        }
    }
    (whole, stretches)
}

/// A guest costs about 4 s to boot under TCG: work under twice that is not worth another.
const MIN_SHARD_S: f64 = 8.0;

/// How many of `jobs` guests `plan` is worth: one per [`MIN_SHARD_S`] of work at most.
pub fn worth_guests(
    plan: &Plan,
    agent_cases: usize,
    catalog: Option<&Catalog>,
    durations: &Durations,
    jobs: usize,
) -> usize {
    let (whole, stretches) = pieces(plan, agent_cases, catalog, durations);
    let total: f64 = whole.iter().map(|w| w.0).sum::<f64>()
        + stretches
            .iter()
            .flat_map(|s| s.tests.iter().map(|t| t.1))
            .sum::<f64>();
    jobs.min((total / MIN_SHARD_S) as usize).max(1)
}

fn range_load(stretch: &Stretch, a: u32, b: u32) -> ModuleLoad {
    ModuleLoad {
        mode: stretch.mode,
        suites: vec![stretch.suite],
        filter: Some(Filter::Range(a, b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        c.insert(Suite::TestBpf, (0..10).map(|i| format!("T{i}")).collect());
        c.insert(Suite::TestTailCalls, vec!["C0".into(), "C1".into()]);
        c.insert(Suite::TestSkbSegment, vec!["S0".into()]);
        c
    }

    fn plan(suites: &[Suite], filter: Option<Filter>) -> Plan {
        let mut plan = Plan::new(suites, &[Mode::Jit], filter).unwrap();
        plan.catalog = Some(catalog());
        plan
    }

    fn text(shards: &[Shard]) -> Vec<String> {
        shards
            .iter()
            .map(|s| {
                let loads: Vec<String> = s.loads.iter().map(|l| l.params()).collect();
                format!(
                    "{}{}",
                    loads.join(" | "),
                    if s.agent.is_some() { " +agent" } else { "" }
                )
            })
            .collect()
    }

    #[test]
    fn one_shard_is_the_plan_itself() {
        let plan = plan(&Suite::ALL, None);
        let shards = partition(&plan, 0, Some(&catalog()), &Durations::new(), 1);
        assert_eq!(shards, vec![Shard::whole(&plan)]);
    }

    #[test]
    fn shards_are_cut_by_duration_not_count() {
        let plan = plan(&Suite::ALL, None);
        let mut d = Durations::new();
        // The last two tests weigh more than all the others: 8 s and 10 s beat 13 s and 5 s.
        for i in 0..10 {
            d.record_test(Mode::Jit, "test_bpf", &format!("T{i}"), 1.0);
        }
        d.record_test(Mode::Jit, "test_bpf", "T8", 5.0);
        d.record_test(Mode::Jit, "test_bpf", "T9", 5.0);
        for name in ["C0", "C1", "S0"] {
            d.record_test(Mode::Jit, "test_tail_calls", name, 0.0);
            d.record_test(Mode::Jit, "test_skb_segment", name, 0.0);
        }
        let shards = partition(&plan, 0, Some(&catalog()), &d, 2);
        assert_eq!(
            text(&shards),
            [
                "test_suite=test_bpf test_range=0,7",
                "test_suite=test_bpf test_range=8,9 | test_suite=test_tail_calls test_range=0,1 \
                 | test_suite=test_skb_segment test_range=0,0",
            ]
        );
    }

    #[test]
    fn every_test_lands_in_exactly_one_shard() {
        let plan = plan(&Suite::ALL, None);
        for n in 1..=15 {
            let shards = partition(&plan, 0, Some(&catalog()), &Durations::new(), n);
            assert!(shards.len() <= n.min(13));
            for (suite, names) in catalog() {
                for id in 0..names.len() as u32 {
                    let r = TestResult {
                        suite: suite.into(),
                        id: Some(id),
                        name: String::new(),
                        mode: Mode::Jit,
                        status: Status::Pass,
                        jited: None,
                        message: None,
                        flaky: None,
                    };
                    let holders = shards.iter().filter(|s| s.covers(&r)).count();
                    assert_eq!(holders, 1, "{suite} #{id} with {n} shards");
                }
            }
        }
    }

    #[test]
    fn little_work_is_not_worth_a_guest_each() {
        let plan = plan(&Suite::ALL, None);
        let mut d = Durations::new();
        assert_eq!(worth_guests(&plan, 0, Some(&catalog()), &d, 4), 1);
        d.record_test(Mode::Jit, "test_bpf", "T9", 20.0);
        assert_eq!(worth_guests(&plan, 0, Some(&catalog()), &d, 4), 2);
        assert_eq!(worth_guests(&plan, 0, Some(&catalog()), &d, 1), 1);
    }

    #[test]
    fn the_agent_bundle_and_named_tests_stay_whole() {
        let mut p = plan(&[Suite::TestBpf], Some(Filter::Name("T3".into())));
        p.agent = true;
        let shards = partition(&p, 500, Some(&catalog()), &Durations::new(), 4);
        assert_eq!(
            text(&shards),
            [" +agent", "test_suite=test_bpf test_name=\"T3\""]
        );
    }

    fn result(suite: Suite, id: u32, status: Status) -> TestResult {
        TestResult::new(suite, Some(id), &format!("T{id}"), Mode::Jit, status)
    }

    #[test]
    fn a_hang_in_the_agent_resumes_past_its_case_and_an_interruption_does_not() {
        let shard = Shard::agent_only(AgentSpan::WHOLE);
        let output = crate::agent::parse_output(b"mode 0 begin 1 0\nload 0 0 0 0\ndone 0 0\n");
        let hung = AgentRun {
            output,
            stop: Some((Status::Hang, "no console output".into())),
            ..AgentRun::default()
        };
        let rest = shard.resume_agent(&hung, 3, 2).expect("cases are left");
        assert_eq!(rest.to_string(), "agent from mode 0 case 2");
        assert_eq!(shard.resume_agent(&hung, 2, 1), None, "case 1 was the last");
        let interrupted = AgentRun {
            stop: Some((Status::NotRun, "interrupted".into())),
            ..hung
        };
        assert_eq!(shard.resume_agent(&interrupted, 3, 2), None);
    }

    #[test]
    fn a_crash_in_a_later_modes_span_resumes_in_that_mode_up_to_the_spans_end() {
        // Three cases in three modes; the span is mode 1's cases 1 and 2.
        let span = AgentSpan {
            start: AgentPlace { mode: 1, skip: 1 },
            end: Some(AgentPlace::mode_start(2)),
        };
        let shard = Shard::agent_only(span);
        let crashed = |output: &[u8]| AgentRun {
            span,
            output: crate::agent::parse_output(output),
            stop: Some((Status::Crash, "Oops".into())),
        };
        let on_case_1 = crashed(b"mode 1 begin 1 0\nload 1 1 0 0\n");
        let rest = shard
            .resume_agent(&on_case_1, 3, 3)
            .expect("case 2 is left");
        assert_eq!(
            rest.to_string(),
            "agent from mode 1 case 2 to mode 2 case 0"
        );
        // On the span's last case, nothing of the span is left, though mode 2 is.
        let on_case_2 = crashed(b"mode 1 begin 1 0\nload 1 1 0 0\ndone 1 1\nload 2 1 0 0\n");
        assert_eq!(shard.resume_agent(&on_case_2, 3, 3), None);
    }

    #[test]
    fn a_crash_resumes_after_its_test_with_the_suites_left() {
        let mut p = plan(&Suite::ALL, None);
        p.agent = true;
        let shard = Shard::whole(&p);
        let results = [
            result(Suite::TestBpf, 3, Status::Pass),
            result(Suite::TestBpf, 4, Status::Crash),
            result(Suite::TestBpf, 5, Status::NotRun),
        ];
        let rest = shard.resume_after(&results, &catalog()).unwrap();
        assert_eq!(
            text(std::slice::from_ref(&rest)),
            [
                "test_suite=test_bpf test_range=5,9 | test_suite=test_tail_calls \
              | test_suite=test_skb_segment +agent"
            ]
        );
        assert!(rest.covers(&results[2]));
        assert!(!rest.covers(&results[1]));
        // A crash on the suite's last test leaves the other suites.
        let last = [result(Suite::TestBpf, 9, Status::Hang)];
        let rest = shard.resume_after(&last, &catalog()).unwrap();
        assert_eq!(rest.loads[0].params(), "test_suite=test_tail_calls");
        // Nothing crashed on a test: nothing to resume.
        assert_eq!(
            shard.resume_after(&[result(Suite::TestBpf, 1, Status::Fail)], &catalog()),
            None
        );
    }

    #[test]
    fn a_crash_on_the_last_test_of_a_range_resumes_with_the_next_load() {
        let shard = Shard {
            loads: vec![
                ModuleLoad {
                    mode: Mode::Jit,
                    suites: vec![Suite::TestBpf],
                    filter: Some(Filter::Range(2, 4)),
                },
                ModuleLoad {
                    mode: Mode::Interp,
                    suites: vec![Suite::TestBpf],
                    filter: Some(Filter::Range(2, 4)),
                },
            ],
            ..Shard::default()
        };
        let rest = shard
            .resume_after(&[result(Suite::TestBpf, 4, Status::Crash)], &catalog())
            .unwrap();
        assert_eq!(rest.loads, shard.loads[1..]);
        let mut interp = result(Suite::TestBpf, 4, Status::Crash);
        interp.mode = Mode::Interp;
        assert_eq!(shard.resume_after(&[interp], &catalog()), None);
    }

    #[test]
    fn the_agent_is_cut_into_a_span_per_suite_and_mode_after_the_modules_shards() {
        use crate::model::AgentSuite::{Conformance, Verifier};
        let mut plan = plan(&[Suite::TestBpf], None);
        plan.agent = true;
        let shards = vec![Shard::whole(&plan)];
        let suites = [Conformance, Conformance, Verifier];
        let cases: Vec<Case> = suites.iter().map(|&suite| case(suite, 2)).collect();
        let durations = Durations::default();
        let cut = cut_agent(shards, &cases, &[Mode::Interp, Mode::Jit], &durations);
        let at = |mode, skip| AgentPlace { mode, skip };
        let spans: Vec<Option<AgentSpan>> = cut.iter().map(|s| s.agent).collect();
        assert!(
            !cut[0].loads.is_empty() && cut[0].agent.is_none(),
            "{:?}",
            cut[0]
        );
        // Longest first (two cases, then one); equal times keep the bundle's order.
        let span = |start, end| Some(AgentSpan { start, end });
        assert_eq!(
            spans[1..],
            [
                span(at(0, 0), Some(at(0, 2))),
                span(at(1, 0), Some(at(1, 2))),
                span(at(0, 2), Some(at(1, 0))),
                span(at(1, 2), None),
            ]
        );
        assert_eq!(
            cut[3].to_string(),
            "agent from mode 0 case 2 to mode 1 case 0"
        );
        assert_eq!(
            cut[1].to_string(),
            "agent from mode 0 case 0 to mode 0 case 2"
        );
        // Cut once: a run's spans, or a resumed guest's rest, are not cut again.
        assert_eq!(
            cut_agent(cut.clone(), &cases, &[Mode::Jit], &durations),
            cut
        );
    }

    #[test]
    fn a_long_suite_is_cut_in_equal_parts_and_large_programs_apart() {
        use crate::model::AgentSuite::Conformance;
        let long = vec![case(Conformance, 2); 2 * MAX_SPAN_CASES + 1];
        let parts: Vec<usize> = runs_of(&long).iter().map(|r| r.len()).collect();
        assert_eq!(MAX_SPAN_CASES, 320);
        assert_eq!(parts, [214, 214, 213]);
        // Two 32K-instruction programs side by side, then two of 15K: three spans.
        let sizes = [2, 32_770, 32_770, 15_000, 15_000, 2];
        let heavy: Vec<Case> = sizes.iter().map(|&n| case(Conformance, n)).collect();
        assert_eq!(runs_of(&heavy), [0..2, 2..3, 3..6]);
    }

    /// A case of `suite` whose one program has `insns` instructions.
    fn case(suite: crate::model::AgentSuite, insns: usize) -> Case {
        let text = format!(
            "-- asm\n{}exit\n-- result\n0x0\n",
            "mov r0, 0\n".repeat(insns - 1)
        );
        let path = std::path::Path::new("t.data");
        let memory = crate::cases::conformance::Memory::Packet;
        let parsed = crate::cases::conformance::parse(path, &text, "t", memory);
        Case {
            suite,
            ..parsed.expect("a case")
        }
    }
}
