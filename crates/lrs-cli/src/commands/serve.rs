//! `lrs serve`: the HTTP server of `lrs-serve` (config from a TOML file, flags override).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lrs_serve::{AppState, ByteSize, ServeConfig};

/// Arguments of `lrs serve`. Every flag overrides the same key of `--config`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file (keys as the flags, with `_`: `cache_bytes = "1GiB"`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Base checkpoint: a directory or a hub id (`id` or `id@revision`).
    #[arg(long)]
    pub model: Option<String>,
    /// The shared file (`shared.safetensors`): a path or an object `s3://bucket/key`.
    #[arg(long)]
    pub shared: Option<PathBuf>,
    /// Registry of `<task_id>.safetensors` files: a directory, or `s3://bucket/prefix`
    /// (credentials and endpoint from the AWS_* environment variables).
    #[arg(long, visible_alias = "tasks")]
    pub tasks_dir: Option<PathBuf>,
    /// Object-store registry: how long a confirmed task version is trusted before the store
    /// is asked again, in ms (changes through other replicas show within it).
    #[arg(long)]
    pub poll_ms: Option<u64>,
    /// Object-store endpoint URL (default: AWS_ENDPOINT_URL).
    #[arg(long)]
    pub store_endpoint: Option<String>,
    /// Object-store region (default: AWS_REGION, else us-east-1).
    #[arg(long)]
    pub store_region: Option<String>,
    /// Allow a plain-HTTP object-store endpoint (default: AWS_ALLOW_HTTP).
    #[arg(long)]
    pub store_allow_http: Option<bool>,
    /// Longest one object-store request may take, in ms (then 503 store_unavailable).
    #[arg(long)]
    pub store_timeout_ms: Option<u64>,
    /// Retries of a failed object-store request (exponential backoff).
    #[arg(long)]
    pub store_retries: Option<usize>,
    /// `tokenizer.json` (default: the checkpoint's).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<String>,
    /// Byte budget of the loaded-task cache (`1GiB`, `500MB`, bytes).
    #[arg(long)]
    pub cache_bytes: Option<ByteSize>,
    /// Most rows in one forward pass.
    #[arg(long)]
    pub max_batch_rows: Option<usize>,
    /// Longest wait for a batch to fill, in ms.
    #[arg(long)]
    pub max_wait_ms: Option<u64>,
    /// Queued requests before 503.
    #[arg(long)]
    pub queue_capacity: Option<usize>,
    /// Most inputs per request.
    #[arg(long)]
    pub max_inputs: Option<usize>,
    /// Most tokens per input.
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Largest request body.
    #[arg(long)]
    pub max_body_bytes: Option<ByteSize>,
    /// Most task files an upload may bring the registry to (409 beyond).
    #[arg(long)]
    pub max_task_files: Option<usize>,
    /// Most sparse non-zeros per task file (checked from its header before loading).
    #[arg(long)]
    pub max_task_nnz: Option<u64>,
    /// Largest task file (uploads and files on disk; checked before reading).
    #[arg(long)]
    pub max_task_file_bytes: Option<ByteSize>,
    /// glibc malloc arenas for the process (0: glibc's default).
    #[arg(long)]
    pub malloc_arenas: Option<usize>,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

impl ServeArgs {
    /// The config file's values (or the defaults) with every given flag applied.
    pub fn config(&self) -> anyhow::Result<ServeConfig> {
        let mut c = match &self.config {
            Some(p) => ServeConfig::from_file(p)?,
            None => ServeConfig::default(),
        };
        macro_rules! set {
            ($($f:ident),*) => {$( if let Some(v) = &self.$f { c.$f = v.clone().into(); } )*};
        }
        set!(
            model,
            shared,
            tasks_dir,
            poll_ms,
            store_endpoint,
            store_region,
            store_allow_http,
            store_timeout_ms,
            store_retries,
            listen,
            cache_bytes,
            max_batch_rows,
            max_wait_ms,
            queue_capacity,
            max_inputs,
            max_tokens,
            max_body_bytes,
            max_task_files,
            max_task_nnz,
            max_task_file_bytes,
            malloc_arenas
        );
        if self.tokenizer.is_some() {
            c.tokenizer = self.tokenizer.clone();
        }
        Ok(c)
    }
}

/// Runs the server until Ctrl-C or SIGTERM, then drains in-flight requests.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = args.config()?;
    if args.print_config {
        print!("{}", cfg.to_toml_string()?);
        return Ok(());
    }
    cfg.validate()?;
    // Before any thread of the server starts.
    crate::allocator::limit_malloc_arenas(cfg.malloc_arenas);
    let state = AppState::from_config(&cfg).context("opening the model and task registry")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .with_context(|| format!("binding {}", cfg.listen))?;
        println!("lrs serve: listening on http://{}", listener.local_addr()?);
        lrs_serve::serve(listener, state, lrs_serve::http::shutdown_signal()).await?;
        println!("lrs serve: stopped");
        anyhow::Ok(())
    })
}
