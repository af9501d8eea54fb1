//! AdamW (decoupled weight decay) with inspectable state, so a checkpoint can hold the moment
//! estimates and a resumed run continues bit for bit. The update is candle-nn's `AdamW`
//! (whose state is private):
//! `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `θ ← θ(1 − ηλ) − η·m̂/(√v̂ + ε)` with
//! `m̂ = m/(1−β₁ᵗ)`, `v̂ = v/(1−β₂ᵗ)`.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::error::{Result, TrainError};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// Learning rate η.
    pub lr: f64,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay λ.
    pub weight_decay: f64,
}

impl AdamWParams {
    /// The usual β₁ = 0.9, β₂ = 0.999, ε = 1e-8 at learning rate `lr` and decay `weight_decay`.
    pub fn new(lr: f64, weight_decay: f64) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }
}

/// AdamW over a fixed list of vars.
#[derive(Debug)]
pub struct AdamW {
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: usize,
    params: AdamWParams,
}

impl AdamW {
    /// Zero moments for `vars`.
    pub fn new(vars: Vec<Var>, params: AdamWParams) -> Result<Self> {
        let m = vars
            .iter()
            .map(|v| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            v: m.clone(),
            m,
            vars,
            step: 0,
            params,
        })
    }

    /// One update from `grads` (vars without a gradient keep their value and moments).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let per_var: Vec<Option<Tensor>> =
            self.vars.iter().map(|v| grads.get(v).cloned()).collect();
        self.update(&per_var)
    }

    fn update(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        self.step += 1;
        let p = self.params;
        let t = self.step as i32;
        let scale_m = 1.0 / (1.0 - p.beta1.powi(t));
        let scale_v = 1.0 / (1.0 - p.beta2.powi(t));
        for (((var, m), v), g) in self
            .vars
            .iter()
            .zip(&mut self.m)
            .zip(&mut self.v)
            .zip(grads)
        {
            let Some(g) = g else { continue };
            // candle's gradients are built by recorded ops on the forward pass's tensors; kept
            // in the moments, they would keep every step's whole graph alive (measured: 85 MB
            // more resident memory per `lrs bench train` step, all of it page-faulted in anew).
            let g = &g.detach();
            let next_m = ((&*m * p.beta1)? + (g * (1.0 - p.beta1))?)?;
            let next_v = ((&*v * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let theta = (var.as_tensor() * (1.0 - p.lr * p.weight_decay))?;
            let adjusted = (m_hat / (v_hat.sqrt()? + p.eps)?)?;
            var.set(&(theta - (adjusted * p.lr)?)?)?;
            *m = next_m;
            *v = next_v;
        }
        Ok(())
    }

    /// One update from explicit gradients, one per var in order (`None`: no gradient).
    pub fn step_with(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        if grads.len() != self.vars.len() {
            return Err(TrainError::Model {
                reason: format!(
                    "{} gradients for {} optimizer vars",
                    grads.len(),
                    self.vars.len()
                ),
            });
        }
        self.update(grads)
    }

    /// AdamW's hyper-parameters.
    pub fn params(&self) -> AdamWParams {
        self.params
    }

    /// Backpropagates `loss` and steps.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// Updates taken so far.
    pub fn steps_taken(&self) -> usize {
        self.step
    }

    /// The vars, in order.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// First and second moments, in var order.
    pub fn moments(&self) -> (&[Tensor], &[Tensor]) {
        (&self.m, &self.v)
    }

    /// Restores a checkpointed state: `step` updates taken and the moments, which must match
    /// the vars' shapes.
    pub fn restore(&mut self, step: usize, m: Vec<Tensor>, v: Vec<Tensor>) -> Result<()> {
        if m.len() != self.vars.len() || v.len() != self.vars.len() {
            return Err(TrainError::Checkpoint {
                reason: format!(
                    "optimizer state for {}/{} vars, optimizer has {}",
                    m.len(),
                    v.len(),
                    self.vars.len()
                ),
            });
        }
        for (i, var) in self.vars.iter().enumerate() {
            for t in [&m[i], &v[i]] {
                if t.dims() != var.dims() {
                    return Err(TrainError::Checkpoint {
                        reason: format!(
                            "optimizer moment {i} has shape {:?}, var has {:?}",
                            t.dims(),
                            var.dims()
                        ),
                    });
                }
            }
        }
        self.step = step;
        self.m = m;
        self.v = v;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::Optimizer;

    #[test]
    fn matches_candle_adamw_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        let init = Tensor::new(&[[0.5f32, -1.0], [2.0, 0.25]], &dev)?;
        let target = Tensor::new(&[[1f32, 0.0], [-1.0, 3.0]], &dev)?;
        let (a, b) = (Var::from_tensor(&init)?, Var::from_tensor(&init)?);
        let mut ours = AdamW::new(vec![a.clone()], AdamWParams::new(0.05, 0.01))?;
        let mut theirs = candle_nn::AdamW::new(
            vec![b.clone()],
            candle_nn::ParamsAdamW {
                lr: 0.05,
                weight_decay: 0.01,
                ..Default::default()
            },
        )?;
        for _ in 0..25 {
            ours.backward_step(&(a.as_tensor() - &target)?.sqr()?.sum_all()?)?;
            theirs.backward_step(&(b.as_tensor() - &target)?.sqr()?.sum_all()?)?;
        }
        let bits = |t: &Tensor| -> Result<Vec<u32>> {
            Ok(t.flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .map(|x| x.to_bits())
                .collect())
        };
        assert_eq!(bits(a.as_tensor())?, bits(b.as_tensor())?);
        assert_eq!(ours.steps_taken(), 25);
        Ok(())
    }

    #[test]
    fn restore_checks_shapes() -> Result<()> {
        let dev = Device::Cpu;
        let var = Var::from_tensor(&Tensor::zeros(3, candle_core::DType::F32, &dev)?)?;
        let mut opt = AdamW::new(vec![var], AdamWParams::new(0.1, 0.0))?;
        let bad = Tensor::zeros(4, candle_core::DType::F32, &dev)?;
        assert!(opt.restore(1, vec![bad.clone()], vec![bad]).is_err());
        assert!(opt.restore(1, vec![], vec![]).is_err());
        Ok(())
    }
}
