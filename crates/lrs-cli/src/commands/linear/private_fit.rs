//! `lrs linear fit --dp-epsilon …`: private AMHT-LRS (user-level joint DP for the released
//! `U`) on a data file, with the guarantee it reached.

use std::collections::HashMap;
use std::time::Instant;

use lrs_core::data_file::{read_instance, write_params};
use lrs_core::metrics::report;
use lrs_core::private_amht::{private_amht_lrs, NoiseRng, NoiseSpec};
use lrs_core::Method;
use serde_json::json;

use super::fit::{print_metrics, FitArgs};

/// Runs `lrs linear fit` with private flags ([`super::dp_args::DpArgs::enabled`]).
pub fn run(a: &FitArgs) -> anyhow::Result<()> {
    let method: Method = a.method.parse()?;
    anyhow::ensure!(
        method == Method::AmhtLrs,
        "--dp-epsilon/--noise-multiplier: only --method amht-lrs has a private version, got {}",
        method.name()
    );
    let file = read_instance(&a.data)?;
    let inst = &file.instance;
    let dp = &a.dp;
    let noise = match (dp.dp_epsilon, dp.noise_multiplier) {
        (Some(epsilon), _) => NoiseSpec::Target {
            epsilon,
            delta: dp.dp_delta,
        },
        (None, Some(s)) => NoiseSpec::Multiplier(s),
        (None, None) => anyhow::bail!("give --dp-epsilon or --noise-multiplier"),
    };
    let rng = dp
        .dp_seed
        .map(NoiseRng::Seeded)
        .unwrap_or(NoiseRng::Entropy);
    let cfg = dp.mechanism.settings().config(
        a.solver.config(a.rank, a.sparsity),
        inst.train.samples,
        noise,
        dp.dp_delta,
        rng,
    );
    let start = Instant::now();
    let res = private_amht_lrs(&inst.train, &cfg, inst.truth.as_ref())?;
    let seconds = start.elapsed().as_secs_f64();
    let p = &res.params;
    let rep = report(
        &p.theta(),
        Some(&p.u),
        Some(&p.b),
        &inst.train,
        inst.test.as_ref(),
        inst.truth.as_ref(),
    );
    if let Some(out) = &a.out {
        let meta = HashMap::from([
            ("method".to_string(), "amht-lrs-dp".to_string()),
            ("data".to_string(), a.data.display().to_string()),
            ("dp".to_string(), serde_json::to_string(&res.privacy)?),
        ]);
        write_params(out, p, meta)?;
    }
    if a.json {
        let mut v = json!({
            "method": "amht-lrs",
            "private": true,
            "tasks": inst.train.tasks, "samples": inst.train.samples, "dim": inst.train.dim,
            "rank": a.rank, "sparsity": a.sparsity,
            "privacy": res.privacy,
            "step_size": res.step_size,
            "noise_rng": if dp.dp_seed.is_some() { "seeded" } else { "entropy" },
            "fit_seconds": seconds,
            "rounds": res.trace.len(),
            "metrics": rep,
        });
        if a.trace {
            v["trace"] = serde_json::to_value(&res.trace)?;
        }
        println!("{v}");
        return Ok(());
    }
    if a.trace {
        println!(
            "{:>5} {:>8} {:>8} {:>12} {:>12} {:>8}",
            "round", "sampled", "clipped", "step_norm", "subspace", "time_s"
        );
        for t in &res.trace {
            println!(
                "{:>5} {:>8} {:>8} {:>12.3e} {:>12} {:>8.3}",
                t.round,
                t.sampled_users,
                t.clipped_users,
                t.step_norm,
                t.subspace_distance
                    .map(|e| format!("{e:.3e}"))
                    .unwrap_or_else(|| "-".into()),
                t.elapsed_s
            );
        }
    }
    let pr = &res.privacy;
    println!("method            amht-lrs (private, user-level joint DP: U released)");
    println!(
        "instance          t={} m={} d={} (rank {}, sparsity {})",
        inst.train.tasks, inst.train.samples, inst.train.dim, a.rank, a.sparsity
    );
    println!("epsilon           {:.4}", pr.epsilon);
    println!("delta             {:e}", pr.delta);
    println!(
        "accountant        {}{}",
        pr.accountant,
        pr.order
            .map(|o| format!(" (order {o})"))
            .unwrap_or_default()
    );
    println!("noise multiplier  {:.4}", pr.noise_multiplier);
    println!("clip norm         {}", pr.clip_norm);
    println!("sample rate       {}", pr.sample_rate);
    println!("rounds            {}", pr.steps);
    println!("step size         {:.4e}", res.step_size);
    println!(
        "noise source      {}",
        if dp.dp_seed.is_some() {
            "seeded (reproducible; not for release)"
        } else {
            "OS entropy"
        }
    );
    print_metrics(&rep);
    println!("fit time          {seconds:.3} s");
    Ok(())
}
