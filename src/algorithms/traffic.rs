//! Per-worker counters of what an algorithm sent and computed — bytes and messages sent, local
//! steps, overlap steps, backup workers — for the metrics of the overlap, sparsification and
//! decentralized methods (`metrics.csv`, `workers.csv`). The algorithm keeps them because it
//! decides every message's size; the engine's [`crate::sim::EngineStats`] counts the same
//! traffic independently (a test checks that they agree).

/// The counters; see the module docs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traffic {
    /// Bytes each worker sent (to the server and to other workers).
    pub bytes_sent: Vec<u64>,
    /// Messages each worker sent.
    pub messages_sent: Vec<u64>,
    /// Bytes the server sent.
    pub server_bytes_sent: u64,
    /// Messages the server sent.
    pub server_messages_sent: u64,
    /// Local steps (stochastic gradients) each worker completed.
    pub local_steps: Vec<u64>,
    /// Steps each worker computed while its message was in flight (LOSCAR's Q_i, summed).
    pub overlap_steps: Vec<u64>,
    /// Σ_k b_i(k): backup workers of each worker, summed over its iterations (decentralized).
    pub backup_workers: Vec<u64>,
    /// Iterations each worker completed (decentralized).
    pub iterations: Vec<u64>,
}

impl Traffic {
    /// Zeroed counters for M workers.
    pub fn new(workers: usize) -> Self {
        Traffic {
            bytes_sent: vec![0; workers],
            messages_sent: vec![0; workers],
            server_bytes_sent: 0,
            server_messages_sent: 0,
            local_steps: vec![0; workers],
            overlap_steps: vec![0; workers],
            backup_workers: vec![0; workers],
            iterations: vec![0; workers],
        }
    }

    /// Worker `worker` sent a message of `bytes` bytes.
    pub fn worker_sent(&mut self, worker: usize, bytes: u64) {
        self.bytes_sent[worker] += bytes;
        self.messages_sent[worker] += 1;
    }

    /// The server sent a message of `bytes` bytes.
    pub fn server_sent(&mut self, bytes: u64) {
        self.server_bytes_sent += bytes;
        self.server_messages_sent += 1;
    }

    /// Bytes sent by everybody.
    pub fn total_bytes(&self) -> u64 {
        self.bytes_sent.iter().sum::<u64>() + self.server_bytes_sent
    }

    /// The largest number of bytes one worker sent.
    pub fn max_worker_bytes(&self) -> u64 {
        self.bytes_sent.iter().copied().max().unwrap_or(0)
    }

    /// Overlap steps of all workers.
    pub fn total_overlap_steps(&self) -> u64 {
        self.overlap_steps.iter().sum()
    }

    /// Mean b_i(k) over all iterations of all workers (NaN before the first).
    pub fn mean_backup_workers(&self) -> f64 {
        let n: u64 = self.iterations.iter().sum();
        if n == 0 { f64::NAN } else { self.backup_workers.iter().sum::<u64>() as f64 / n as f64 }
    }
}
