//! `lrs privacy …`: ε for a noise level (`epsilon`), σ for a target ε (`sigma`).
//!
//! Thin layer over `lrs-privacy`: parse, call the accountant, print (text or `--json`).

use clap::{Args, Subcommand, ValueEnum};
use lrs_privacy::{
    calibrate_sigma_pld, calibrate_sigma_rdp, Conversion, LossPair, Orders, PldAccountant,
    RdpAccountant,
};
use serde::Serialize;

/// Privacy accounting subcommands.
#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// ε after `--steps` Poisson-subsampled Gaussian steps (noise multiplier `--sigma`,
    /// sampling rate `--q`) at target `--delta`.
    Epsilon(EpsilonArgs),
    /// Smallest noise multiplier σ whose ε stays within `--epsilon` at `--delta`.
    Sigma(SigmaArgs),
}

/// Which accountant to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountantKind {
    /// Rényi DP (Opacus / TF Privacy / dp_accounting compatible).
    Rdp,
    /// Privacy-loss distribution by FFT (tighter; microsoft/prv_accountant compatible).
    Pld,
}

impl AccountantKind {
    fn label(self) -> &'static str {
        match self {
            AccountantKind::Rdp => "RDP",
            AccountantKind::Pld => "PLD",
        }
    }
}

/// RDP → (ε, δ) conversion (RDP accountant only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConversionArg {
    /// Balle et al. 2020 (tighter; Opacus and dp_accounting default).
    Balle,
    /// ε = RDP(α) + log(1/δ)/(α − 1).
    Classic,
}

impl From<ConversionArg> for Conversion {
    fn from(c: ConversionArg) -> Self {
        match c {
            ConversionArg::Balle => Conversion::Balle,
            ConversionArg::Classic => Conversion::Classic,
        }
    }
}

/// Grid of Rényi orders (RDP accountant only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrdersArg {
    /// [1.1, 1.2, …, 10.9] + [12, …, 63].
    Opacus,
    /// [1.25, …, 4.5] + [5, …, 63] + [128, 256, 512].
    Tf,
}

impl From<OrdersArg> for Orders {
    fn from(o: OrdersArg) -> Self {
        match o {
            OrdersArg::Opacus => Orders::opacus(),
            OrdersArg::Tf => Orders::tf_privacy(),
        }
    }
}

/// Options shared by both subcommands.
#[derive(Debug, Args)]
pub struct AccountingArgs {
    /// Poisson sampling rate q in (0, 1].
    #[arg(long)]
    pub q: f64,
    /// Number of steps (rounds) composed.
    #[arg(long)]
    pub steps: u64,
    /// Target δ in (0, 1).
    #[arg(long)]
    pub delta: f64,
    /// Accountant.
    #[arg(long, value_enum, default_value_t = AccountantKind::Rdp)]
    pub accountant: AccountantKind,
    /// RDP → (ε, δ) conversion (ignored by the PLD accountant).
    #[arg(long, value_enum, default_value_t = ConversionArg::Balle)]
    pub conversion: ConversionArg,
    /// Rényi order grid (ignored by the PLD accountant).
    #[arg(long, value_enum, default_value_t = OrdersArg::Opacus)]
    pub orders: OrdersArg,
    /// PLD accountant's ε slack: the reported ε is an upper bound within about this of the
    /// estimate (ignored by the RDP accountant).
    #[arg(long, default_value_t = 0.01)]
    pub eps_error: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `lrs privacy epsilon`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct EpsilonArgs {
    /// Noise multiplier σ (noise std / clip norm), > 0.
    #[arg(long)]
    pub sigma: f64,
    #[command(flatten)]
    pub common: AccountingArgs,
}

/// `lrs privacy sigma`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct SigmaArgs {
    /// Target ε, > 0.
    #[arg(long)]
    pub epsilon: f64,
    #[command(flatten)]
    pub common: AccountingArgs,
}

/// What `epsilon` prints.
#[derive(Debug, Serialize)]
struct EpsilonOutput {
    accountant: AccountantKind,
    epsilon: f64,
    /// RDP: the optimal order.
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion: Option<Conversion>,
    /// PLD: point estimate and lower bound next to the reported upper bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    epsilon_estimate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epsilon_lower: Option<f64>,
    /// PLD: the neighbouring direction whose bound was reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    loss_pair: Option<LossPair>,
    sigma: f64,
    q: f64,
    steps: u64,
    delta: f64,
}

/// What `sigma` prints.
#[derive(Debug, Serialize)]
struct SigmaOutput {
    accountant: AccountantKind,
    sigma: f64,
    /// ε achieved at `sigma` (never above the target).
    epsilon: f64,
    target_epsilon: f64,
    q: f64,
    steps: u64,
    delta: f64,
}

/// Runs a privacy subcommand.
pub fn run(cmd: PrivacyCommand) -> anyhow::Result<()> {
    match cmd {
        PrivacyCommand::Epsilon(args) => epsilon(args),
        PrivacyCommand::Sigma(args) => sigma(args),
    }
}

fn epsilon(args: EpsilonArgs) -> anyhow::Result<()> {
    let c = &args.common;
    let out = match c.accountant {
        AccountantKind::Rdp => {
            let mut acc = RdpAccountant::new(c.orders.into());
            acc.add_steps(args.sigma, c.q, c.steps)?;
            let rep = acc.epsilon(c.delta, c.conversion.into())?;
            EpsilonOutput {
                accountant: c.accountant,
                epsilon: rep.epsilon,
                order: Some(rep.order),
                conversion: Some(rep.conversion),
                epsilon_estimate: None,
                epsilon_lower: None,
                loss_pair: None,
                sigma: args.sigma,
                q: c.q,
                steps: c.steps,
                delta: c.delta,
            }
        }
        AccountantKind::Pld => {
            let mut acc = PldAccountant::with_eps_error(c.eps_error)?;
            acc.add_steps(args.sigma, c.q, c.steps)?;
            let rep = acc.epsilon(c.delta)?;
            EpsilonOutput {
                accountant: c.accountant,
                epsilon: rep.epsilon,
                order: None,
                conversion: None,
                epsilon_estimate: Some(rep.epsilon_estimate),
                epsilon_lower: Some(rep.epsilon_lower),
                loss_pair: Some(rep.pair),
                sigma: args.sigma,
                q: c.q,
                steps: c.steps,
                delta: c.delta,
            }
        }
    };
    if c.json {
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    match (out.order, out.epsilon_estimate) {
        (Some(order), _) => println!(
            "epsilon = {:.6}  (delta = {:e}, RDP, {:?} conversion, optimal order {})",
            out.epsilon, out.delta, c.conversion, order
        ),
        (None, Some(est)) => println!(
            "epsilon <= {:.6}  (estimate {:.6}, delta = {:e}, PLD, eps_error {})",
            out.epsilon, est, out.delta, c.eps_error
        ),
        (None, None) => println!("epsilon = {:.6}", out.epsilon),
    }
    Ok(())
}

fn sigma(args: SigmaArgs) -> anyhow::Result<()> {
    let c = &args.common;
    let cal = match c.accountant {
        AccountantKind::Rdp => calibrate_sigma_rdp(
            args.epsilon,
            c.delta,
            c.q,
            c.steps,
            &c.orders.into(),
            c.conversion.into(),
        )?,
        AccountantKind::Pld => {
            calibrate_sigma_pld(args.epsilon, c.delta, c.q, c.steps, c.eps_error)?
        }
    };
    let out = SigmaOutput {
        accountant: c.accountant,
        sigma: cal.sigma,
        epsilon: cal.epsilon,
        target_epsilon: args.epsilon,
        q: c.q,
        steps: c.steps,
        delta: c.delta,
    };
    if c.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "sigma = {:.6}  (epsilon = {:.6} <= {} at delta = {:e}, {} accountant)",
            out.sigma,
            out.epsilon,
            out.target_epsilon,
            out.delta,
            c.accountant.label()
        );
    }
    Ok(())
}
