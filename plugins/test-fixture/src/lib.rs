//! test-fixture: a filter that misbehaves on demand, for patchsync's own tests of the
//! plugin host. Not for real sites.
//!
//! `mode` (config): `include` (every update, logging a line and printing one per batch),
//! `trap` (panics on the update whose title contains `trap_on`, includes the others),
//! `loop` (never returns), `grow` (allocates until the memory limit stops it),
//! `wrong-count` (returns one verdict too few), `reject` (rejects its config).

use patchsync_sdk::prelude::*;

#[derive(Debug)]
pub struct Fixture {
    mode: String,
    trap_on: String,
    batches: u64,
}

impl Filter for Fixture {
    fn init(config: &Config) -> Result<Self, String> {
        let mode = config.string("mode")?.unwrap_or_else(|| "include".into());
        if mode == "reject" {
            return Err("mode = \"reject\": this fixture rejects its config on purpose".into());
        }
        Ok(Fixture {
            mode,
            trap_on: config.string("trap_on")?.unwrap_or_default(),
            batches: 0,
        })
    }

    fn filter(&mut self, _u: &Update, _c: &Categories) -> Verdict {
        Verdict::include("fixture")
    }

    fn filter_batch(&mut self, batch: &[Update], cats: &Categories) -> Vec<Verdict> {
        self.batches += 1;
        match self.mode.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "wrong-count" => batch.iter().skip(1).map(|_| Verdict::Abstain).collect(),
            _ => {
                info(&format!(
                    "batch {} of {} updates",
                    self.batches,
                    batch.len()
                ));
                println!("fixture stdout: batch {}", self.batches);
                batch
                    .iter()
                    .map(|u| {
                        if self.mode == "trap"
                            && !self.trap_on.is_empty()
                            && u.title().contains(&self.trap_on)
                        {
                            panic!("fixture trap on {}", u.id);
                        }
                        self.filter(u, cats)
                    })
                    .collect()
            }
        }
    }
}

patchsync_sdk::export_filter!(Fixture);
