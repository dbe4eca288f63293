//! `tracectl`: the operator and auditor command line. It talks gRPC to the services, prints
//! readable text by default and JSON with `--json`, and exits non-zero when a check fails.

/// Prints a line to stdout, and exits quietly with the status a shell gives to SIGPIPE when
/// stdout is closed (for example `tracectl timeline ... | head`) instead of panicking.
macro_rules! out {
    ($($argument:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($argument)*).is_err() {
            std::process::exit(141);
        }
    }};
}

mod archive;
mod backups;
mod bench;
mod completeness;
mod demo;
mod export;
mod keys;
mod output;
mod progress;
mod proofs;
mod retention;
mod token;

use clap::{Parser, Subcommand};

/// Operator and auditor CLI for the trace system.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Archive gRPC address.
    #[arg(
        long,
        env = "TRACE_ARCHIVE_ADDR",
        default_value = "http://127.0.0.1:50056",
        global = true
    )]
    archive: String,
    /// Print JSON for machines instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// User id of the caller, sent in a development token [default: tracectl]. With
    /// `token`, the user to mint a token for.
    #[arg(long, env = "TRACE_USER", global = true)]
    user: Option<String>,
    /// Department of the caller, sent in a development token.
    #[arg(long, env = "TRACE_DEPARTMENT", default_value = "audit", global = true)]
    department: String,
    /// Roles of the caller, comma-separated, sent in a development token.
    #[arg(long, env = "TRACE_ROLES", default_value = "audit", global = true)]
    roles: String,
    /// Bearer token (JWT) to send instead of a development token minted from --user,
    /// --department and --roles.
    #[arg(long, env = "TRACE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rewrap sealed confidential content and sealed event payloads to the active
    /// key-encryption key after a key rotation. Reads blob stores and databases directly, with
    /// the services stopped; content ciphertext and archived digests stay unchanged.
    Rewrap {
        /// Blob store URL of a service, for example `file:///var/lib/trace/document/blobs`;
        /// repeatable.
        #[arg(long = "blob-store")]
        blob_stores: Vec<String>,
        /// Database URL of a service or of the archive, for example
        /// `sqlite:///var/lib/trace/archive.db`; repeatable. The outbox, the archive's
        /// ledger and the sealed text columns of the service tables are rewrapped.
        #[arg(long = "database")]
        databases: Vec<String>,
        /// A key-encryption key as ID=PATH; give the old keys and the new one.
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        /// Key id to rewrap to.
        #[arg(long)]
        active: String,
        /// Count what would change without writing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the archived history of one entity, oldest first.
    Timeline {
        /// Entity type, for example `document`.
        entity_type: String,
        /// Entity id.
        entity_id: String,
    },
    /// Verify the hash chain and payload digests; exits 1 when verification fails.
    Verify {
        /// First sequence to check.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last sequence to check; 0 means the head.
        #[arg(long, default_value_t = 0)]
        to: u64,
        /// A signed checkpoint saved earlier: also prove that the live ledger extends it.
        #[arg(long)]
        checkpoint: Option<std::path::PathBuf>,
        /// Verifier key of the checkpoint signer (`name+id+base64`).
        #[arg(long, env = "TRACE_CHECKPOINT_VERIFIER_KEY")]
        verifier_key: Option<String>,
    },
    /// Generate an Ed25519 checkpoint signing key; prints the signing key, then the verifier key.
    Keygen {
        /// Key name, which becomes the checkpoint origin line.
        #[arg(long, default_value = "trace.local/archive")]
        name: String,
    },
    /// Print the latest signed checkpoint, or sign a new one with `--create`.
    Checkpoint {
        /// Sign a checkpoint of the current tree head first.
        #[arg(long)]
        create: bool,
    },
    /// Ask the archive to back up every entry not yet in its backup location.
    Backup,
    /// Print a new random backup sealing key (64 hex digits).
    BackupKeygen,
    /// Check a backup location offline: sealing, digests, chain, Merkle roots, checkpoints.
    VerifyBackup {
        /// Backup location URL: file:///srv/trace-backup, s3://bucket/prefix,
        /// gs://bucket/prefix or az://container/prefix.
        #[arg(long)]
        from: String,
        /// Option of the cloud store as KEY=VALUE, for example aws_endpoint=URL or
        /// aws_region=eu-central-1; repeatable. Credentials come from the cloud's standard
        /// environment variables (AWS_*, GOOGLE_*, AZURE_*).
        #[arg(long = "store-option", value_name = "KEY=VALUE")]
        store_options: Vec<String>,
        /// File holding the backup key.
        #[arg(long)]
        key_file: String,
        /// Verifier key of the checkpoint signer, to check each manifest's checkpoint.
        #[arg(long, env = "TRACE_CHECKPOINT_VERIFIER_KEY")]
        verifier_key: Option<String>,
    },
    /// Rebuild an empty archive database from a backup location, verifying every segment.
    Restore {
        /// Backup location URL, as for verify-backup.
        #[arg(long)]
        from: String,
        /// Option of the cloud store as KEY=VALUE, for example aws_endpoint=URL or
        /// aws_region=eu-central-1; repeatable. Credentials come from the cloud's standard
        /// environment variables (AWS_*, GOOGLE_*, AZURE_*).
        #[arg(long = "store-option", value_name = "KEY=VALUE")]
        store_options: Vec<String>,
        /// File holding the backup key.
        #[arg(long)]
        key_file: String,
        /// Database to restore into; it must hold no entries.
        #[arg(long)]
        database_url: String,
        /// Verifier key of the checkpoint signer, to check each manifest's checkpoint.
        #[arg(long, env = "TRACE_CHECKPOINT_VERIFIER_KEY")]
        verifier_key: Option<String>,
    },
    /// Write an evidence package (records, CSV, proofs, checkpoint) for a query.
    Export {
        /// Entity type, for example `document`.
        #[arg(long, default_value = "")]
        entity_type: String,
        /// Entity id (with --entity-type).
        #[arg(long, default_value = "")]
        entity_id: String,
        /// Department of the actor.
        #[arg(long, default_value = "")]
        actor_department: String,
        /// RFC 3339 start of the period (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339 end of the period (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Output folder; created, and must be empty.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Check an evidence package offline; exits 1 when it does not verify.
    VerifyExport {
        /// Package folder.
        folder: std::path::PathBuf,
        /// Verifier key of the checkpoint signer (`name+id+base64`).
        #[arg(long, env = "TRACE_CHECKPOINT_VERIFIER_KEY")]
        verifier_key: String,
    },
    /// Print a bearer token (JWT) for --user, with name, department and roles from the
    /// company directory.
    Token {
        /// Seconds until the token expires.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
        /// File holding the HS256 secret; without it the public development secret signs.
        #[arg(long)]
        secret_file: Option<String>,
        /// Issuer (`iss` claim) the services expect.
        #[arg(long, default_value = "trace-dev")]
        issuer: String,
        /// Audience (`aud` claim) the services expect.
        #[arg(long, default_value = "trace")]
        audience: String,
        /// Company directory TOML file.
        #[arg(long, default_value = "deploy/local/directory.toml")]
        directory: std::path::PathBuf,
    },
    /// Plan a retention disposition (`--dry-run`, nothing removed) or approve a plan.
    Disposition {
        /// List what has expired and is not held, and store it as a plan.
        #[arg(long, conflicts_with = "approve")]
        dry_run: bool,
        /// Approve and execute a plan made by someone else.
        #[arg(long, value_name = "PLAN_ID")]
        approve: Option<String>,
    },
    /// Place or release a legal hold.
    #[command(subcommand)]
    Hold(HoldCommand),
    /// Print and check a Merkle proof.
    #[command(subcommand)]
    Proof(ProofCommand),
    /// Print one ledger entry with its hashes, by sequence number or event id.
    Entry {
        /// Sequence number or event id (UUID).
        key: String,
    },
    /// Print ledger size, chain head, rejected and conflicting messages.
    Status,
    /// Print the completeness score of a department over a period, with each rule's counts.
    Completeness {
        /// Department id, for example `engineering`.
        #[arg(long)]
        department: String,
        /// First day of the period (`YYYY-MM-DD`), inclusive.
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last day of the period (`YYYY-MM-DD`), inclusive.
        #[arg(long)]
        to: chrono::NaiveDate,
        /// Inspection service gRPC address.
        #[arg(
            long,
            env = "TRACE_INSPECTION_ADDR",
            default_value = "http://127.0.0.1:50055"
        )]
        inspection: String,
    },
    /// Drive a document, a meeting, a project, a week of work reports and an inspection
    /// through the running stack and verify their trace.
    Demo {
        /// Document service gRPC address.
        #[arg(
            long,
            env = "TRACE_DOCUMENT_ADDR",
            default_value = "http://127.0.0.1:50051"
        )]
        document: String,
        /// Meeting service gRPC address.
        #[arg(
            long,
            env = "TRACE_MEETING_ADDR",
            default_value = "http://127.0.0.1:50052"
        )]
        meeting: String,
        /// Project service gRPC address.
        #[arg(
            long,
            env = "TRACE_PROJECT_ADDR",
            default_value = "http://127.0.0.1:50053"
        )]
        project: String,
        /// Worklog service gRPC address.
        #[arg(
            long,
            env = "TRACE_WORKLOG_ADDR",
            default_value = "http://127.0.0.1:50054"
        )]
        worklog: String,
        /// Inspection service gRPC address.
        #[arg(
            long,
            env = "TRACE_INSPECTION_ADDR",
            default_value = "http://127.0.0.1:50055"
        )]
        inspection: String,
        /// Seconds to wait for every event to reach the archive.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
    },
    /// Drive a mix of gRPC calls through the running stack and report throughput, call
    /// latency and the time until each event is archived.
    Bench(bench::BenchOptions),
}

#[derive(Debug, Subcommand)]
enum HoldCommand {
    /// Hold one entity, every entity of a type when --entity-id is omitted, or, with any
    /// query flag, every entry that all the given query flags match.
    Place {
        /// Entity type; with query flags, a query field like the others.
        #[arg(long)]
        entity_type: Option<String>,
        /// Entity id (with --entity-type, and no query flag).
        #[arg(long, default_value = "")]
        entity_id: String,
        /// Query: department of the actor. (`--department` is the caller's own.)
        #[arg(long, conflicts_with = "entity_id")]
        actor_department: Option<String>,
        /// Query: user id of the actor.
        #[arg(long, conflicts_with = "entity_id")]
        actor_id: Option<String>,
        /// Query: exact subject, or a prefix ending in `.>` such as `trace.document.>`.
        #[arg(long, conflicts_with = "entity_id")]
        subject: Option<String>,
        /// Query: RFC 3339 start (inclusive) of the period in which the archive recorded
        /// the entry.
        #[arg(long, conflicts_with = "entity_id")]
        recorded_from: Option<String>,
        /// Query: RFC 3339 end (exclusive) of the recording period.
        #[arg(long, conflicts_with = "entity_id")]
        recorded_to: Option<String>,
        /// Hold every record in the archive. Needed for a hold with no other field, and
        /// accepted only alone.
        #[arg(long, conflicts_with_all = [
            "entity_type", "entity_id", "actor_department", "actor_id", "subject",
            "recorded_from", "recorded_to",
        ])]
        all_records: bool,
        /// Why the records are held (for example a case number).
        #[arg(long)]
        reason: String,
    },
    /// Release a hold.
    Release {
        hold_id: String,
        /// Why the hold ends.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum ProofCommand {
    /// Inclusion proof of one entry.
    Inclusion {
        /// Ledger sequence of the entry.
        sequence: u64,
        /// Tree size to prove against; 0 means the current size.
        #[arg(long, default_value_t = 0)]
        tree_size: u64,
    },
    /// Consistency proof between two tree sizes.
    Consistency {
        /// Older tree size.
        from_size: u64,
        /// Newer tree size; 0 means the current size.
        #[arg(default_value_t = 0)]
        to_size: u64,
    },
}

/// Identity sent with every call: a given bearer token, or else a development token minted
/// for the user, department and roles.
#[derive(Clone)]
pub struct Identity {
    pub user_id: String,
    pub department: String,
    pub roles: Vec<String>,
    /// `Bearer <jwt>` from --token.
    pub bearer: Option<tonic::metadata::AsciiMetadataValue>,
}

/// Leaves the token out of debug output.
impl std::fmt::Debug for Identity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Identity")
            .field("user_id", &self.user_id)
            .field("department", &self.department)
            .field("roles", &self.roles)
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Identity {
    /// Wraps a message in a request carrying this identity.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(bearer) = &self.bearer {
            let metadata = request.metadata_mut();
            metadata.insert(trace_runtime::auth::AUTHORIZATION_HEADER, bearer.clone());
            return request;
        }
        let roles: Vec<&str> = self.roles.iter().map(String::as_str).collect();
        trace_runtime::context::attach_identity(
            &mut request,
            &self.user_id,
            &self.department,
            &roles,
            None,
        );
        request
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    // Progress of long jobs goes to stderr as log lines, so stdout stays machine-readable.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let identity = match identity(&cli) {
        Ok(identity) => identity,
        Err(error) => {
            eprintln!("tracectl: {error:#}");
            std::process::exit(2);
        }
    };
    let result = match cli.command {
        Command::Timeline {
            entity_type,
            entity_id,
        } => archive::timeline(&cli.archive, &identity, &entity_type, &entity_id, cli.json).await,
        Command::Verify {
            from,
            to,
            checkpoint,
            verifier_key,
        } => {
            let inputs = checkpoint
                .map(|path| proofs::checkpoint_inputs(&path, verifier_key))
                .transpose();
            match inputs {
                Err(error) => Err(error),
                Ok(inputs) => {
                    let chain = archive::verify(&cli.archive, &identity, from, to, cli.json).await;
                    match (chain, inputs) {
                        (Ok(true), Some((note, key))) => {
                            proofs::verify_checkpoint(
                                &cli.archive,
                                &identity,
                                &note,
                                &key,
                                cli.json,
                            )
                            .await
                        }
                        (result, _) => result,
                    }
                }
            }
        }
        Command::Keygen { name } => proofs::keygen(&name),
        Command::Backup => backups::backup(&cli.archive, &identity, cli.json).await,
        Command::BackupKeygen => backups::keygen(),
        Command::Rewrap {
            blob_stores,
            databases,
            keys,
            active,
            dry_run,
        } => {
            let request = keys::RewrapRequest {
                blob_stores: &blob_stores,
                databases: &databases,
                keys: &keys,
                active: &active,
                dry_run,
            };
            keys::rewrap(request, cli.json).await
        }
        Command::Disposition {
            approve: Some(plan_id),
            ..
        } => retention::approve(&cli.archive, &identity, &plan_id, cli.json).await,
        Command::Disposition { approve: None, .. } => {
            retention::plan(&cli.archive, &identity, cli.json).await
        }
        Command::Hold(HoldCommand::Place {
            entity_type,
            entity_id,
            actor_department,
            actor_id,
            subject,
            recorded_from,
            recorded_to,
            all_records,
            reason,
        }) => {
            let target = retention::HoldTarget {
                entity_type,
                entity_id,
                actor_department,
                actor_id,
                subject,
                recorded_from,
                recorded_to,
                all_records,
            };
            retention::place_hold(&cli.archive, &identity, target, &reason, cli.json).await
        }
        Command::Hold(HoldCommand::Release { hold_id, reason }) => {
            retention::release_hold(&cli.archive, &identity, &hold_id, &reason, cli.json).await
        }
        Command::Export {
            entity_type,
            entity_id,
            actor_department,
            from,
            to,
            out,
        } => {
            let query = export::ExportQuery {
                entity_type,
                entity_id,
                department: actor_department,
                from,
                to,
            };
            export::export(&cli.archive, &identity, query, &out).await
        }
        Command::VerifyExport {
            folder,
            verifier_key,
        } => export::verify_export(&folder, &verifier_key, cli.json),
        Command::VerifyBackup {
            from,
            store_options,
            key_file,
            verifier_key,
        } => match backups::store_options(&store_options) {
            Ok(options) => {
                let key = verifier_key.as_deref();
                backups::verify_backup(&from, &options, &key_file, key, cli.json).await
            }
            Err(error) => Err(error),
        },
        Command::Restore {
            from,
            store_options,
            key_file,
            database_url,
            verifier_key,
        } => match backups::store_options(&store_options) {
            Ok(options) => {
                let target = backups::RestoreTarget {
                    from: &from,
                    options: &options,
                    key_file: &key_file,
                    database_url: &database_url,
                };
                backups::restore(target, verifier_key.as_deref(), cli.json).await
            }
            Err(error) => Err(error),
        },
        Command::Checkpoint { create } => {
            proofs::checkpoint(&cli.archive, &identity, create, cli.json).await
        }
        Command::Proof(ProofCommand::Inclusion {
            sequence,
            tree_size,
        }) => proofs::inclusion(&cli.archive, &identity, sequence, tree_size, cli.json).await,
        Command::Proof(ProofCommand::Consistency { from_size, to_size }) => {
            proofs::consistency(&cli.archive, &identity, from_size, to_size, cli.json).await
        }
        Command::Entry { key } => archive::entry(&cli.archive, &identity, &key, cli.json).await,
        Command::Completeness {
            department,
            from,
            to,
            inspection,
        } => completeness::print(&inspection, &identity, &department, from, to, cli.json).await,
        Command::Status => archive::status(&cli.archive, &identity, cli.json).await,
        Command::Token {
            ttl_secs,
            secret_file,
            issuer,
            audience,
            directory,
        } => {
            let options = token::TokenOptions {
                user_id: cli.user.clone(),
                ttl: std::time::Duration::from_secs(ttl_secs),
                secret_file,
                issuer,
                audience,
                directory,
            };
            token::print(&options, cli.json)
        }
        Command::Demo {
            document,
            meeting,
            project,
            worklog,
            inspection,
            timeout_secs,
        } => {
            let addresses = demo::Addresses {
                document,
                meeting,
                project,
                worklog,
                inspection,
                archive: cli.archive.clone(),
            };
            demo::run(&addresses, timeout_secs).await
        }
        Command::Bench(options) => bench::run(&options, cli.json).await,
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("tracectl: {error:#}");
            std::process::exit(2);
        }
    }
}

/// Builds the caller identity from the global options.
fn identity(cli: &Cli) -> anyhow::Result<Identity> {
    let bearer = match &cli.token {
        Some(token) => Some(format!("Bearer {}", token.trim()).parse().map_err(|_| {
            anyhow::anyhow!("invalid --token: it contains characters a JWT cannot contain")
        })?),
        None => None,
    };
    Ok(Identity {
        user_id: cli.user.clone().unwrap_or_else(|| "tracectl".to_owned()),
        department: cli.department.clone(),
        roles: cli
            .roles
            .split(',')
            .map(|role| role.trim().to_owned())
            .collect(),
        bearer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorization(arguments: &[&str]) -> String {
        let cli = Cli::try_parse_from(arguments).unwrap();
        let request = identity(&cli).unwrap().request(());
        let value = request
            .metadata()
            .get(trace_runtime::auth::AUTHORIZATION_HEADER)
            .unwrap();
        value.to_str().unwrap().to_owned()
    }

    #[test]
    fn caller_department_is_not_a_hold_query() {
        let cli = Cli::try_parse_from([
            "tracectl",
            "--department",
            "audit",
            "hold",
            "place",
            "--reason",
            "case 1",
        ])
        .unwrap();
        let Command::Hold(HoldCommand::Place {
            entity_type,
            actor_department,
            ..
        }) = cli.command
        else {
            panic!("expected hold place");
        };
        assert_eq!(entity_type, None);
        assert_eq!(actor_department, None);
    }

    #[test]
    fn token_option_is_sent_as_bearer() {
        let sent = authorization(&["tracectl", "--token", "header.payload.signature", "status"]);

        assert_eq!(sent, "Bearer header.payload.signature");
    }

    #[test]
    fn identity_options_send_development_token() {
        let sent = authorization(&["tracectl", "--user", "li.na", "status"]);
        let token = sent.strip_prefix("Bearer ").unwrap();

        let claims = trace_runtime::auth::Authenticator::development()
            .verify(token)
            .unwrap();

        assert_eq!(claims.sub, "li.na");
        assert_eq!(claims.department, "audit");
        assert_eq!(claims.roles, vec!["audit"]);
    }

    #[test]
    fn token_debug_is_redacted() {
        let cli =
            Cli::try_parse_from(["tracectl", "--token", "secret.jwt.value", "status"]).unwrap();

        let debug_output = format!("{:?}", identity(&cli).unwrap());

        assert!(!debug_output.contains("secret.jwt.value"), "{debug_output}");
    }
}
