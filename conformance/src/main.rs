//! `conformance`: check a token-cache persistence plugin from the command line.
//!
//! ```text
//! cargo run -p conformance -- --plugin file
//! cargo run -p conformance -- --plugin 'exec:python3 conformance/examples/file_plugin.py' \
//!     --filter 'lock::*' --json report.json --junit report.xml
//! ```
//!
//! Exit status: 0 when every applicable case passed (skips and known gaps do not fail a
//! run), 1 when a case failed, 2 for a usage or setup error.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::Parser;
use conformance::{
    EnvSettings, Expectations, FileFactory, PluginFactory, Suite, WorkerLauncher, all_cases,
    protocol::{EXEC_PREFIX, ExecFactory, SelfExecLauncher, serve_worker_if_requested},
    report::{self, Outcome},
    select,
};

/// Checks a token-cache persistence plugin against the conformance suite.
#[derive(Debug, Parser)]
#[command(name = "conformance", version)]
struct Cli {
    /// The plugin: `file` (the built-in reference plugin) or `exec:<command>` (a program
    /// speaking the JSON-lines protocol of PROTOCOL.md, started with `sh -c`).
    #[arg(long, env = "CONFORMANCE_PLUGIN", default_value = "file")]
    plugin: String,
    /// Run only cases matching this glob (`lock::*`) or containing this text; repeatable.
    #[arg(long = "filter", value_name = "GLOB")]
    filters: Vec<String>,
    /// Property-test cases for the model area (default 16 sequences of up to 40 steps; 1024 with --thorough).
    /// Over CONFORMANCE_CASES.
    #[arg(long)]
    cases: Option<u32>,
    /// The seed of every randomized choice; printed with each failure to reproduce it.
    /// Over CONFORMANCE_SEED.
    #[arg(long)]
    seed: Option<u64>,
    /// Release gating: many more property cases, longer races, more repetitions. Also set
    /// by CONFORMANCE_THOROUGH=1.
    #[arg(long)]
    thorough: bool,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write the report as JUnit XML to this file.
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Known gaps: a file of `"case glob" = "reason"` lines (see the expectations module).
    /// Over CONFORMANCE_EXPECTATIONS.
    #[arg(long, value_name = "PATH")]
    expectations: Option<PathBuf>,
    /// List the cases (name and rule) and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    // Worker mode first: the suite re-executes this binary to get a second process serving
    // the built-in file plugin, and then stdout belongs to the protocol.
    serve_worker_if_requested(&FileFactory::new());
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("conformance: {message}");
            ExitCode::from(2)
        }
    }
}

/// Runs the selected cases; `Ok(passed)`, or a usage/setup error.
fn run(cli: Cli) -> Result<bool, String> {
    let cases = select(&all_cases(), &cli.filters)?;
    if cli.list {
        for case in &cases {
            println!("{:<48} {}", case.name, case.rule);
        }
        return Ok(true);
    }
    if cases.is_empty() {
        return Err(format!("no case matches the filters {:?}", cli.filters));
    }
    let (factory, launcher) = plugin(&cli.plugin)?;
    // The flags over the environment's settings.
    let env = EnvSettings::read()?;
    let settings = EnvSettings {
        seed: cli.seed.or(env.seed),
        cases: cli.cases.or(env.cases),
        thorough: cli.thorough || env.thorough,
        expectations: cli.expectations.or(env.expectations),
    };
    let mut config = settings.config();
    config.rerun = format!(
        "cargo run -p conformance -- --plugin '{}' --filter '{{case}}' --seed {{seed}} --cases {}{}",
        cli.plugin,
        config.cases,
        if config.thorough { " --thorough" } else { "" }
    );
    let expectations = match &settings.expectations {
        Some(path) => Expectations::load(path)?,
        None => Expectations::none(),
    };
    let suite = Suite::new(factory, config)
        .map_err(|e| format!("cannot create a scratch directory: {e}"))?
        .with_launcher(launcher)
        .with_expectations(expectations);
    eprintln!(
        "checking {} with seed {} ({} cases selected)",
        suite.label(),
        suite.config().seed,
        cases.len()
    );
    let mut reports = Vec::new();
    for case in &cases {
        let report = suite.run_case(case);
        let note = match &report.outcome {
            Outcome::Skipped(reason) => format!(" ({reason})"),
            _ => String::new(),
        };
        eprintln!(
            "{:<12} {} [{} ms]{note}",
            report.outcome.word(),
            report.name,
            report.duration.as_millis()
        );
        reports.push(report);
    }
    let report = suite.report(reports);
    print!("{}", report::human(&report));
    if let Some(path) = &cli.json {
        std::fs::write(path, report::json(&report))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &cli.junit {
        std::fs::write(path, report::junit(&report))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(report.passed())
}

/// What checks a plugin: its factory and the launcher of its worker processes.
type Plugin = (Arc<dyn PluginFactory>, Arc<dyn WorkerLauncher>);

/// The factory and worker launcher for a plugin spec.
fn plugin(spec: &str) -> Result<Plugin, String> {
    if spec == "file" {
        let launcher = SelfExecLauncher::new().map_err(|e| e.to_string())?;
        return Ok((Arc::new(FileFactory::new()), Arc::new(launcher)));
    }
    match ExecFactory::from_spec(spec) {
        Some(exec) => {
            let exec = Arc::new(exec);
            Ok((exec.clone(), exec))
        }
        None => Err(format!(
            "--plugin must be `file` or `{EXEC_PREFIX}<command>`, not {spec:?}"
        )),
    }
}
