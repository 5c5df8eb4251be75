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
    /// Merge `webdock.NAME.toml` over the config; the destination keeps its own history and state.
    #[arg(
        long,
        short = 'd',
        global = true,
        value_name = "NAME",
        env = "WEBDOCK_DESTINATION"
    )]
    pub destination: Option<String>,
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
        /// Write the classic build context (Dockerfile and files) that gives
        /// `docker build DIR` the same work, instead of building (benchmark).
        #[arg(long, hide = true, value_name = "DIR")]
        emit_context: Option<std::path::PathBuf>,
        /// Rebuild a tag that is live or the previous release even if the code changed.
        #[arg(long)]
        force: bool,
        /// Then push `<registry>/<image>:TAG` (`registry` in webdock.toml) and print its digest.
        #[arg(long)]
        push: bool,
    },
    /// Stream `<image>:TAG` from this engine into another one, without a registry.
    #[command(
        after_help = "Only the layers the target engine lacks are sent; nothing is written to the\nlocal disk. Prints the image id on stdout once the target holds the same id.\n\nExample: webdock ship 3.46.0 --to tcp://10.0.0.7:2375"
    )]
    Ship {
        #[arg(allow_hyphen_values = true)]
        tag: String,
        /// The target engine: unix:///path/docker.sock, tcp://HOST:PORT,
        /// ssh://[USER@]HOST, or the name of a host in [hosts].
        #[arg(long, value_name = "DOCKER_HOST")]
        to: String,
    },
    /// Resolve TAG in the registry to a digest, pull that digest, check its webdock.tag label.
    #[command(
        after_help = "Tags the pulled image `<image>:TAG` on this engine, so promote runs exactly the\ndigest printed on stdout.\n\nExample: webdock pull 3.46.0"
    )]
    Pull {
        #[arg(allow_hyphen_values = true)]
        tag: String,
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
        /// With [hosts]: leave out a host that cannot be reached (recorded in history; status warns it is behind).
        #[arg(long = "skip-host", value_name = "NAME")]
        skip_host: Vec<String>,
        /// Release exactly the digest that destination NAME last released healthy for TAG.
        #[arg(long, value_name = "DESTINATION")]
        from: Option<String>,
        /// Run TAG although the registry now names another digest than one released before.
        #[arg(long)]
        allow_moved_tag: bool,
    },
    /// Flip back to the previous color (kept warm), or promote the previous tag if it is gone.
    Rollback {
        /// With [hosts]: leave out a host that cannot be reached.
        #[arg(long = "skip-host", value_name = "NAME")]
        skip_host: Vec<String>,
    },
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
    /// Move cron or a djob to another of its hosts (with [hosts]): stop-first across hosts, never off a host guessed dead.
    #[command(
        after_help = "HOST must be one of the worker's `hosts` in webdock.toml.

A planned move (the host it runs on answers): its container is stopped and removed on every host that has it, each removal confirmed, and only then created on HOST, on the tag it ran. Down time is about one stop plus one start.

Off a host that does not answer: webdock cannot tell a dead host from a cut-off one, and never guesses. Without [lease] the move is refused. With [lease] it goes ahead only once the lease store says nobody holds the worker's lease: the holder on the cut-off host kills its daemon when it cannot confirm the lease within half the window, and the server frees the lease only after the whole window. Until then it exits 1, naming the host and who holds the lease: run it again after the window.

With failover = \"auto\" a standby takes over by itself; `failover --to` starts the worker on HOST first (it takes the lease), then on its other hosts, which stand by.

`webdock status` shows where each worker runs and who holds its lease. Exit codes: 0 moved, 1 refused or failed, 2 bad usage or config.

Examples:
  webdock failover djob billing --to web3
  webdock failover cron --to web2
  webdock --json failover djob billing --to web3"
    )]
    Failover {
        #[command(subcommand)]
        target: Target,
        /// The host to run it on: one of its `hosts` that answers.
        #[arg(long, global = true, value_name = "HOST")]
        to: Option<String>,
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
    NginxSnippet {
        /// With [hosts]: the block for this host (its own paths).
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
    },
    /// Print an nginx `upstream` + `server` block that balances over the hosts' nginx (with [hosts]).
    #[command(
        after_help = "Round robin over each portal host's public_url, with passive failure handling
(max_fails, fail_timeout, proxy_next_upstream). Include it in the http { } block of the
load balancer's nginx.

Example: webdock lb-snippet --listen 80 > /etc/nginx/conf.d/shop-lb.conf"
    )]
    LbSnippet {
        /// What the balancer listens on (`PORT` or `ADDR:PORT`).
        #[arg(long, default_value = "80")]
        listen: String,
    },
    /// Check the host: engine, directories, host nginx config, permissions.
    Doctor,
    /// A monitoring check (Nagios/Icinga/monit plugin): one line, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    #[command(
        after_help = "CRITICAL: the live release does not answer through the host nginx, cron or a djob
is not running, a djob's heartbeat is older than its limit; with [hosts], a host that cannot
be reached (every host is asked; each worker is judged on the host that runs it).
WARNING: a restart in the last hour, a promote that did not finish (workers on another tag),
the warm previous portal older than check.idle_portal_warn, a disk over check.disk_warn.
UNKNOWN: the check could not look (config, engine, a heartbeat that cannot be read).
Performance data follows the `|`. With --json: one object. See docs/operations.md.

Example (Nagios): command_line  /usr/local/bin/webdock -c /srv/shop/webdock.toml check"
    )]
    Check,
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
