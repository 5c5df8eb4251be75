//! The command line: verbs, their arguments and the help that teaches them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "webdock",
    version,
    about = "Blue/green releases of Django-style apps on a Docker host",
    long_about = "Blue/green releases of Django-style apps on a Docker host.\n\n\
        One image per release tag runs every role: the portal (nginx + uwsgi), cron, and\n\
        one container per djob. `promote` starts the idle color, health-checks it over its\n\
        unix socket and flips the host nginx to it atomically; djobs and cron are replaced\n\
        stop-first so that two of one never run at once.",
    after_help = "Typical use:\n  webdock build 3.46.0        # CI: one image per tag\n  webdock promote 3.46.0      # release: zero failed requests\n  webdock rollback            # back to the previous tag in under a second\n  webdock status              # on-call: every role at a glance\n  webdock restart djob billing\n\nExit codes: 0 ok, 1 the operation failed, 2 bad usage or config."
)]
pub struct Cli {
    /// The project's config file.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "WEBDOCK_CONFIG",
        default_value = "webdock.toml"
    )]
    pub config: PathBuf,
    /// Machine-readable output: JSON on stdout (events as JSON lines for long commands).
    #[arg(long, global = true)]
    pub json: bool,
    /// More logging on stderr (-vv for everything).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build `<image>:TAG` from the app: s6, nginx, uwsgi, the app, its wheels and static files.
    #[command(
        after_help = "The base image is made first if missing (mmdebstrap, once per machine).\nPrints the image id on stdout.\n\nExample: webdock build 3.46.0"
    )]
    Build {
        /// Release tag (Docker tag grammar: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}).
        #[arg(allow_hyphen_values = true)]
        tag: String,
        /// Build every layer again instead of reusing the cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// Make the base image (Debian + nginx + uwsgi + s6) if it is missing.
    Base,
    /// Release TAG: migrate, start the idle color, health-check, flip, replace cron and djobs.
    #[command(
        after_help = "Steps: lock, image check, release command, start idle portal, health checks over\nthe unix socket, atomic flip, check through the host nginx (flip back on failure),\ncron and djobs replaced stop-first, history, prune.\n\nExample: webdock promote 3.46.0"
    )]
    Promote {
        /// The tag of an image made by `webdock build`.
        #[arg(allow_hyphen_values = true)]
        tag: String,
    },
    /// Flip back to the previous color (kept warm), or promote the previous tag if it is gone.
    Rollback,
    /// Live color and tag, both portal colors, cron, every djob, the lock holder, recent deploys.
    Status,
    /// Past promotes and rollbacks, newest last.
    History {
        /// How many entries to show.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
    },
    /// Restart one role: `djob NAME`, `cron` or `portal` (stop-first; the portal with zero failed requests).
    Restart {
        #[command(subcommand)]
        target: Target,
    },
    /// Stop a djob (it stays stopped until `start` or the next promote).
    Stop {
        #[command(subcommand)]
        target: Target,
    },
    /// Start a stopped djob or cron on the live tag.
    Start {
        #[command(subcommand)]
        target: Target,
    },
    /// Show a role's container output.
    Logs {
        /// portal, cron, djob or release
        role: String,
        /// The djob's name, the portal's color (default: live), or the release's tag (default: the running one).
        name: Option<String>,
        /// Keep following.
        #[arg(short, long)]
        follow: bool,
        /// Lines from the end.
        #[arg(long, default_value = "100")]
        tail: String,
    },
    /// The release command (migrations): `kill` stops the running one; webdock itself never does.
    Release {
        #[command(subcommand)]
        verb: ReleaseVerb,
    },
    /// Back up the database now by the live release's image ([backup] command), or with
    /// --verify restore the newest backup into a scratch database and check it.
    #[command(
        after_help = "promote backs up before every new release command by itself.

Examples:
  webdock backup
  webdock backup --verify"
    )]
    Backup {
        /// Restore the newest backup into a scratch database and run backup.verify on it.
        #[arg(long)]
        verify: bool,
    },
    /// The backups on record, oldest first (name, tag, time, file on the data volume).
    Backups,
    /// Print the nginx `location` block that the host's nginx includes in its server block.
    NginxSnippet,
    /// Check the host: engine, directories, host nginx config, permissions.
    Doctor,
}

#[derive(Debug, Subcommand, Clone)]
pub enum Target {
    /// One djob, by its name in webdock.toml.
    Djob {
        /// The djob's name in webdock.toml.
        #[arg(allow_hyphen_values = true)]
        name: String,
    },
    /// The cron container.
    Cron,
    /// The portal (restart only): the live tag into the idle color, then the flip.
    Portal,
}

#[derive(Debug, Subcommand, Clone)]
pub enum ReleaseVerb {
    /// Kill the running release command (a migration halfway may leave the database partly changed).
    #[command(
        after_help = "Name the tag of the running release command, or pass --yes.

Example: webdock release kill 3.46.0"
    )]
    Kill {
        /// The tag whose release command runs (see `webdock logs release`).
        #[arg(allow_hyphen_values = true)]
        tag: Option<String>,
        /// Kill whichever release command runs, without naming its tag.
        #[arg(long)]
        yes: bool,
    },
}
