//! The worker pool: a run's shards on `jobs` guests at once, each guest that crashed or hung
//! followed by one that carries on after the test it stopped on, until the work is done or
//! given up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::guest::{GuestRun, Setup};
use super::OnEvent;
use crate::agent::{AgentPlace, AgentRun};
use crate::model::{AgentSuite, Status};
use crate::shard::Shard;

/// How many guests in a row may crash or hang before finishing a single test, before what
/// they were running is given up (`give_up`): a kernel that crashes on every test would
/// otherwise take a boot (and, for a hang, a silence timeout) per test. A guest that finished
/// tests before it stopped is progress, however many stops came before (a JIT that hangs now
/// and then, as the 32-bit MIPS one does under jit-hardened, still gets every test run).
const MAX_FRUITLESS_RESUMES: usize = 3;

/// Boots one guest for a shard, into its `GuestRun`: [`super::guest::boot`], or a fake in
/// the pool's tests.
pub type Boot<'a> = &'a (dyn Fn(&Setup<'_>, &Shard, &mut GuestRun, &AtomicBool, OnEvent<'_>) -> anyhow::Result<()>
         + Sync);

struct Job {
    shard: Shard,
    /// Guests in a row, just before this one, that stopped before finishing any test.
    fruitless: usize,
}

/// The work of a run, shared by its workers.
struct Pool {
    queue: Mutex<VecDeque<Job>>,
    /// Guests running now: a worker that finds the queue empty waits for them, since a crash
    /// can put work back.
    running: AtomicUsize,
    started: AtomicUsize,
    finished: Mutex<Vec<GuestRun>>,
}

impl Pool {
    /// One worker: boots guests for the queue's shards until none is left or running.
    fn work(&self, setup: &Setup<'_>, cancel: &AtomicBool, on_event: OnEvent<'_>, boot: Boot<'_>) {
        loop {
            // Numbered as taken from the queue: guest 1 runs the first shard.
            let taken = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                queue.pop_front().map(|job| {
                    self.running.fetch_add(1, Ordering::SeqCst);
                    (job, self.started.fetch_add(1, Ordering::SeqCst) + 1)
                })
            };
            let Some((job, number)) = taken else {
                if self.running.load(Ordering::SeqCst) == 0 {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            let (guest, next) = run_one(setup, &job, number, cancel, on_event, boot);
            if let Some(next) = next {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                queue.push_front(next);
            }
            self.finished
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(guest);
            self.running.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Runs `shards` on `jobs` guests at once, numbering them from `first_number`. Returns one
/// entry per guest booted, in the order they were started.
pub fn run_shards(
    setup: &Setup<'_>,
    shards: Vec<Shard>,
    jobs: usize,
    first_number: usize,
    cancel: &AtomicBool,
    on_event: OnEvent<'_>,
    boot: Boot<'_>,
) -> Vec<GuestRun> {
    let pool = Pool {
        queue: Mutex::new(
            shards
                .into_iter()
                .map(|shard| Job {
                    shard,
                    fruitless: 0,
                })
                .collect(),
        ),
        running: AtomicUsize::new(0),
        started: AtomicUsize::new(first_number.saturating_sub(1)),
        finished: Mutex::new(Vec::new()),
    };
    let cpus = allowed_cpus();
    std::thread::scope(|scope| {
        for worker in 0..jobs.max(1) {
            // With a core per guest, each worker keeps to its own core, and so does every QEMU
            // it starts (a child inherits its thread's affinity): two TCG guests that the
            // scheduler moves between cores ran 8 % slower on the reference machine.
            let core = (jobs > 1 && jobs <= cpus.len()).then(|| cpus[worker]);
            let pool = &pool;
            scope.spawn(move || {
                if let Some(core) = core {
                    pin_to(core);
                }
                pool.work(setup, cancel, on_event, boot);
            });
        }
    });
    let finished = pool.finished;
    let mut guests = finished.into_inner().unwrap_or_else(|e| e.into_inner());
    guests.sort_by_key(|g| g.number);
    judge_agent(setup, &mut guests);
    guests
}

/// The agent's results, from every guest that ran it, in the order they ran: given to the
/// first of them.
fn judge_agent(setup: &Setup<'_>, guests: &mut [GuestRun]) {
    let runs: Vec<AgentRun> = guests.iter().filter_map(|g| g.agent.clone()).collect();
    let Some(first) = guests.iter_mut().find(|g| g.agent.is_some()) else {
        return;
    };
    first.results.extend(crate::agent::results(
        setup.cases,
        setup.modes,
        &runs,
        setup.arch,
    ));
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Keeps the calling thread, and the processes it starts from now on, on `cpu`.
fn pin_to(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    // Without the pin a guest is only slower, not wrong.
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// The guests' errors, each said once: the same error of several guests (a QEMU that cannot
/// start any) becomes one, `guests 1, 2: ERROR`.
pub fn errors_said_once(guests: &[GuestRun]) -> Vec<String> {
    let mut merged: Vec<(Vec<usize>, String)> = Vec::new();
    for guest in guests {
        let prefix = format!("guest {}: ", guest.number);
        for error in &guest.errors {
            let Some(text) = error.strip_prefix(&prefix) else {
                merged.push((Vec::new(), error.clone()));
                continue;
            };
            match merged.iter_mut().find(|(n, t)| !n.is_empty() && t == text) {
                Some((numbers, _)) => numbers.push(guest.number),
                None => merged.push((vec![guest.number], text.to_owned())),
            }
        }
    }
    merged
        .into_iter()
        .map(|(numbers, text)| match numbers.as_slice() {
            [] => text,
            [one] => format!("guest {one}: {text}"),
            many => {
                let list: Vec<String> = many.iter().map(usize::to_string).collect();
                format!("guests {}: {text}", list.join(", "))
            }
        })
        .collect()
}

/// A log of guest `number`: `STEM.log` for the first, as in a run of one guest, then
/// `STEM-N.log`.
pub fn log_name(stem: &str, number: usize) -> String {
    match number {
        1 => format!("{stem}.log"),
        n => format!("{stem}-{n}.log"),
    }
}

/// Boots one guest for `job`. Returns what it produced and, if it crashed or hung on a test,
/// the shard that carries on after that test.
fn run_one(
    setup: &Setup<'_>,
    job: &Job,
    number: usize,
    cancel: &AtomicBool,
    on_event: OnEvent<'_>,
    boot: Boot<'_>,
) -> (GuestRun, Option<Job>) {
    let mut guest = GuestRun {
        number,
        ..GuestRun::default()
    };
    guest.timing.console = log_name("console", number);
    guest.timing.shard = job.shard.to_string();
    if let Err(e) = boot(setup, &job.shard, &mut guest, cancel, on_event) {
        guest.errors.push(format!("guest {number}: {e:#}"));
        return (guest, None);
    }
    let rest = match (setup.catalog, guest.interrupted) {
        (Some(catalog), false) => job.shard.resume_after(&guest.results, catalog),
        _ => None,
    };
    let rest = match (rest, &guest.agent) {
        (None, Some(agent)) if !guest.interrupted => {
            job.shard
                .resume_agent(agent, setup.cases.len(), setup.modes.len())
        }
        (rest, _) => rest,
    };
    let streak = fruitless_streak(job.fruitless, &guest);
    let gave_up = rest.is_some() && streak >= MAX_FRUITLESS_RESUMES;
    let next = match rest {
        Some(rest) if gave_up => give_up(setup, &rest, &mut guest),
        Some(shard) => Some(Job {
            shard,
            fruitless: streak,
        }),
        None => None,
    };
    if let Some(next) = &next {
        // The tests the crash kept from running get their results from the next guest.
        guest
            .results
            .retain(|r| !(r.status == Status::NotRun && next.shard.covers(r)));
        // A suite given up leaves the shard unfinished, whatever runs after it.
        guest.complete = !gave_up;
    }
    (guest, next)
}

/// After guests in a row stopped before finishing a test: the module's tests left are given
/// up (a kernel that crashes on every test), and so is the rest of the agent's suite in
/// flight in its guest's span, but not what follows it in the span nor the other spans (a JIT
/// that hangs on every case of one kind, like the 32-bit MIPS one under jit-hardened, still
/// gets the others run).
fn give_up(setup: &Setup<'_>, rest: &Shard, guest: &mut GuestRun) -> Option<Job> {
    let number = guest.number;
    // Resumed in the agent: no module load is left.
    let span = rest.agent.filter(|_| rest.loads.is_empty());
    let suites: Vec<AgentSuite> = setup.cases.iter().map(|c| c.suite).collect();
    let stopped = guest.agent.as_ref().zip(span).and_then(|(run, span)| {
        let (case, mode) = run.in_flight(suites.len(), setup.modes.len())?;
        let next = span.from(AgentPlace::past_suite(
            case,
            mode,
            &suites,
            setup.modes.len(),
        ));
        Some((*suites.get(case)?, setup.modes.get(mode)?, next))
    });
    let Some((suite, mode, next)) = stopped else {
        guest.errors.push(format!(
            "guest {number}: not resumed again: {MAX_FRUITLESS_RESUMES} guests in a row \
             crashed or hung before finishing a test; the tests left are not run"
        ));
        return None;
    };
    let what_next = if next.is_some() {
        "; the run goes on with the suites and modes after it"
    } else {
        ""
    };
    guest.errors.push(format!(
        "guest {number}: {MAX_FRUITLESS_RESUMES} guests in a row crashed or hung in \
         {suite} [{}] before finishing a case: the cases left of it in their guest's span are \
         not run{what_next}",
        mode.name()
    ));
    next.map(|span| Job {
        shard: Shard::agent_only(span),
        fruitless: 0,
    })
}

/// The guests in a row that stopped before finishing any test, counting this one.
fn fruitless_streak(before: usize, guest: &GuestRun) -> usize {
    if finished_a_test(guest) {
        0
    } else {
        before + 1
    }
}

/// Whether a guest got any test to a verdict of its own, by the module or by the agent.
fn finished_a_test(guest: &GuestRun) -> bool {
    let judged = guest.results.iter().any(|r| {
        !matches!(
            r.status,
            Status::Crash | Status::Hang | Status::NotRun | Status::Error
        )
    });
    let agent_done = guest
        .agent
        .as_ref()
        .is_some_and(|a| a.output.observations.values().any(|o| o.done));
    judged || agent_done
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use crate::agent::parse_output;
    use crate::arch::Arch;
    use crate::kernel::Kernel;
    use crate::model::{Catalog, Mode, Suite, TestResult};
    use crate::plan::Plan;
    use crate::session::Timeouts;

    /// A guest played by the host: every test of its shard passes, but those `crashes` picks
    /// (by test id, guest number, and whether it is the guest's first test) crash the guest,
    /// and the tests after are not run, as a session reports them.
    fn fake(
        setup: &Setup<'_>,
        shard: &Shard,
        guest: &mut GuestRun,
        crashes: fn(u32, usize, bool) -> bool,
    ) -> anyhow::Result<()> {
        let catalog = setup.catalog.expect("the tests give a catalog");
        let mut crashed = false;
        for load in shard.plan(setup.catalog).loads {
            for suite in load.suites {
                let names = &catalog[&suite];
                let tests = match &load.filter {
                    None => (0u32..).zip(names.iter().map(String::as_str)).collect(),
                    Some(filter) => filter.cut(names),
                };
                for (id, name) in tests {
                    let first = guest.results.is_empty();
                    let status = if crashed {
                        Status::NotRun
                    } else if crashes(id, guest.number, first) {
                        crashed = true;
                        Status::Crash
                    } else {
                        Status::Pass
                    };
                    let result = TestResult::new(suite, Some(id), name, load.mode, status);
                    guest.results.push(result);
                }
            }
        }
        guest.complete = !crashed;
        Ok(())
    }

    /// Runs ten tests of test_bpf on `jobs` guests played by [`fake`], crashing as `crashes`
    /// says.
    fn run_ten(jobs: usize, crashes: fn(u32, usize, bool) -> bool) -> Vec<GuestRun> {
        let catalog: Catalog = [(Suite::TestBpf, (0..10).map(|i| format!("T{i}")).collect())]
            .into_iter()
            .collect();
        let plan = Plan::new(&[Suite::TestBpf], &[Mode::Jit], None).expect("a plan");
        let kernel = Kernel {
            layout: 0,
            image: "bzImage".into(),
            config: None,
            test_bpf: "test_bpf.ko".into(),
            extra_modules: Vec::new(),
            source: "fake".into(),
            revision: None,
            config_hash: None,
        };
        let setup = Setup {
            arch: Arch::X86_64,
            kernel: &kernel,
            memory_mib: 512,
            init: Path::new("init"),
            agent: None,
            cases: &[],
            modes: &[Mode::Jit],
            catalog: Some(&catalog),
            timeouts: Timeouts {
                boot: Duration::from_secs(1),
                silence: Duration::from_secs(1),
            },
            inject_panic_after_s: None,
            snapshot: None,
            out: Path::new("out"),
            scratch: Path::new("scratch"),
        };
        let cancel = AtomicBool::new(false);
        run_shards(
            &setup,
            vec![Shard::whole(&plan)],
            jobs,
            1,
            &cancel,
            &|_| {},
            &|setup, shard, guest, _, _| fake(setup, shard, guest, crashes),
        )
    }

    fn statuses(guests: &[GuestRun]) -> Vec<(Option<u32>, Status)> {
        let mut all: Vec<_> = guests
            .iter()
            .flat_map(|g| g.results.iter().map(|r| (r.id, r.status)))
            .collect();
        all.sort_by_key(|&(id, _)| id);
        all
    }

    #[test]
    fn a_crash_is_pinned_on_its_test_and_the_next_guest_runs_the_rest() {
        for jobs in [1, 2] {
            let guests = run_ten(jobs, |id, number, _| id == 3 && number == 1);
            assert_eq!(guests.len(), 2, "jobs {jobs}");
            assert_eq!(
                guests[1].timing.shard,
                "jit test_suite=test_bpf test_range=4,9"
            );
            let expected: Vec<_> = (0..10)
                .map(|id| (Some(id), if id == 3 { Status::Crash } else { Status::Pass }))
                .collect();
            assert_eq!(statuses(&guests), expected);
            assert!(guests.iter().all(|g| g.complete && g.errors.is_empty()));
        }
    }

    #[test]
    fn a_kernel_that_crashes_on_every_first_test_is_given_up() {
        let guests = run_ten(1, |_, _, first| first);
        assert_eq!(guests.len(), MAX_FRUITLESS_RESUMES);
        let crashed: Vec<_> = statuses(&guests)
            .into_iter()
            .filter(|&(_, s)| s == Status::Crash)
            .collect();
        assert_eq!(crashed.len(), MAX_FRUITLESS_RESUMES);
        let last = &guests[MAX_FRUITLESS_RESUMES - 1];
        assert!(
            last.errors.iter().any(|e| e.contains("not resumed again")),
            "{:?}",
            last.errors
        );
        // The tests left are reported, as not run.
        assert_eq!(statuses(&guests).len(), 10);
    }

    fn guest_with(statuses: &[Status]) -> GuestRun {
        let results = statuses
            .iter()
            .map(|&status| TestResult::new(Suite::TestBpf, Some(0), "TAX", Mode::Jit, status))
            .collect();
        GuestRun {
            results,
            ..GuestRun::default()
        }
    }

    #[test]
    fn the_same_error_of_several_guests_is_said_once() {
        let guest = |number, errors: &[&str]| GuestRun {
            number,
            errors: errors.iter().map(|e| e.to_string()).collect(),
            ..GuestRun::default()
        };
        let cannot_start = "qemu-system-mips ended (exit status: 1) before the guest booted";
        let guests = [
            guest(1, &[&format!("guest 1: {cannot_start}")]),
            guest(
                2,
                &[&format!("guest 2: {cannot_start}"), "guest 2: its own"],
            ),
            guest(3, &[&format!("guest 3: {cannot_start}"), "not a guest's"]),
        ];
        assert_eq!(
            errors_said_once(&guests),
            [
                format!("guests 1, 2, 3: {cannot_start}"),
                "guest 2: its own".to_owned(),
                "not a guest's".to_owned(),
            ]
        );
    }

    #[test]
    fn only_guests_that_finish_nothing_count_towards_giving_up() {
        // A kernel that crashes on its first test every time: given up on the third guest.
        let crashed = guest_with(&[Status::Crash, Status::NotRun]);
        let streak = (0..3).fold(0, |before, _| fruitless_streak(before, &crashed));
        assert_eq!(streak, MAX_FRUITLESS_RESUMES);
        // A guest that passed one test before hanging starts the count again.
        let progressed = guest_with(&[Status::Pass, Status::Hang]);
        assert_eq!(fruitless_streak(2, &progressed), 0);
        // So does an agent that finished a case, whose results are judged only at the end.
        let mut agent = guest_with(&[]);
        agent.agent = Some(AgentRun {
            output: parse_output(b"mode 0 begin 1 2\nload 0 0 0 0\ndone 0 0\nload 1 0 0 0\n"),
            stop: Some((Status::Hang, "no console output for 20 s".into())),
            ..AgentRun::default()
        });
        assert_eq!(fruitless_streak(2, &agent), 0);
        agent.agent = Some(AgentRun {
            output: parse_output(b"mode 0 begin 1 2\nload 1 0 0 0\n"),
            stop: Some((Status::Hang, "no console output for 20 s".into())),
            ..AgentRun::default()
        });
        assert_eq!(fruitless_streak(2, &agent), 3);
    }
}
