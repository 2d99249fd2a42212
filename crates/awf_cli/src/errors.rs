//! Failures and the exit codes scripts branch on.

/// A failure, with its exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments or unreadable input (exit 2).
    Usage(String),
    /// The database refused the call; carries the SQLSTATE (exit by class, see [`exit_code`]).
    Sql { code: String, message: String },
    /// The database could not be reached (exit 3).
    Connect(String),
    /// A verification found a problem (exit 4); the report was printed.
    Failed(String),
}

impl CliError {
    /// 0 ok, 1 refused by the database (any other SQLSTATE), 2 usage, 3 cannot connect,
    /// 4 integrity failure (a failed verification, XX001), 5 not found (P0002), 6 conflict
    /// (23505, 40001, 40P01), 7 over a limit (54000, 54001), 8 not allowed (42501, 28000).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Connect(_) => 3,
            CliError::Failed(_) => 4,
            CliError::Sql { code, .. } => match code.as_str() {
                "XX001" => 4,
                "P0002" => 5,
                "23505" | "40001" | "40P01" => 6,
                "54000" | "54001" => 7,
                "42501" | "28000" => 8,
                _ => 1,
            },
        }
    }

    /// What to do next, for the errors where there is something to say.
    fn hint(&self) -> Option<&'static str> {
        match self {
            CliError::Connect(_) => {
                Some("check --database-url / DATABASE_URL and that the server is running")
            }
            CliError::Sql { code, .. } => match code.as_str() {
                "P0002" => Some("check the id (list them with `awf snapshot list` or `awf sync status`)"),
                "42501" => Some("connect as a role in awf_admin for admin commands"),
                "54000" | "54001" => Some("the call is over a limit; see `docs/sql-api.md`, Settings"),
                "42883" | "42P01" => Some("the extension in this database is older than this CLI: ALTER EXTENSION awf_lifecycle UPDATE"),
                _ => None,
            },
            _ => None,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Connect(m) | CliError::Failed(m) => f.write_str(m)?,
            CliError::Sql { code, message } => write!(f, "{message} (SQLSTATE {code})")?,
        }
        if let Some(h) = self.hint() {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl From<postgres::Error> for CliError {
    fn from(e: postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => CliError::Sql {
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
            },
            None => CliError::Connect(format!("database error: {e}")),
        }
    }
}
