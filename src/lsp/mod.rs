//! `journey lsp`: the Language Server Protocol over stdio, for editors. Owns the session
//! with the editor (`lsp-server`'s connection, `lsp-types`' messages), the workspace of
//! journey files it keeps in memory (`workspace`), and the answers: diagnostics exactly as
//! `journey check` gives them, definitions and references (`index`), hover (`describe`),
//! completion (`complete`), outline and formatting (`symbols`), semantic tokens (`tokens`),
//! rename and the did-you-mean quick fixes. Reads the language only through `lang` and
//! `compile`'s public functions.
//!
//! Synchronous on purpose: the checker is synchronous and fast (a folder is rechecked on each
//! change, parsing again only the files whose text changed; the changes waiting are taken
//! together first), so one thread answering in order is simplest and always consistent.

mod complete;
mod describe;
mod index;
mod position;
mod symbols;
mod tokens;
mod workspace;

use crate::lang::ast::Span;
use crate::lang::diagnostic::{Diagnostic, Severity};
use index::Kind;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::*;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use workspace::{Analysis, Workspace};

pub use tokens::KEYWORDS;

/// Runs the server on stdin and stdout until the editor says `exit`.
pub fn run() -> ExitCode {
    let (connection, io) = Connection::stdio();
    let result = serve(&connection);
    drop(connection);
    let joined = io.join();
    match result.and(joined.map_err(|e| e.to_string())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("journey lsp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::FULL),
                save: Some(TextDocumentSyncSaveOptions::Supported(true)),
                ..TextDocumentSyncOptions::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), " ".into(), "\"".into()]),
            ..CompletionOptions::default()
        }),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: WorkDoneProgressOptions::default(),
        })),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
            ..CodeActionOptions::default()
        })),
        semantic_tokens_provider: Some(SemanticTokensServerCapabilities::SemanticTokensOptions(
            SemanticTokensOptions {
                legend: tokens::legend(),
                full: Some(SemanticTokensFullOptions::Bool(true)),
                range: None,
                ..SemanticTokensOptions::default()
            },
        )),
        ..ServerCapabilities::default()
    }
}

/// The folders to check together: the editor's workspace folders (their `journeys/` when
/// they have one, as `journey check` defaults to it), or `initializationOptions.paths`.
#[allow(deprecated)] // root_uri and root_path: older editors send only these
fn roots(init: &InitializeParams) -> Vec<PathBuf> {
    if let Some(paths) = init
        .initialization_options
        .as_ref()
        .and_then(|o| o.get("paths"))
        .and_then(|p| serde_json::from_value::<Vec<PathBuf>>(p.clone()).ok())
    {
        return paths;
    }
    let mut folders: Vec<PathBuf> = init
        .workspace_folders
        .iter()
        .flatten()
        .filter_map(|f| f.uri.to_file_path().ok())
        .collect();
    if folders.is_empty() {
        folders.extend(init.root_uri.as_ref().and_then(|u| u.to_file_path().ok()));
    }
    if folders.is_empty() {
        folders.extend(init.root_path.as_ref().map(PathBuf::from));
    }
    folders
        .into_iter()
        .map(|f| {
            let j = f.join("journeys");
            if j.is_dir() {
                j
            } else {
                f
            }
        })
        .collect()
}

fn serve(connection: &Connection) -> Result<(), String> {
    let caps = serde_json::to_value(capabilities()).map_err(|e| e.to_string())?;
    let init = connection.initialize(caps).map_err(|e| e.to_string())?;
    let init: InitializeParams = serde_json::from_value(init).map_err(|e| e.to_string())?;
    let mut server = Server {
        ws: Workspace::new(roots(&init)),
        out: connection,
        versions: HashMap::new(),
    };
    server.publish(&BTreeSet::new());
    // A message read while taking a burst of notifications, to handle next.
    let mut next: Option<Message> = None;
    loop {
        let msg = match next.take() {
            Some(m) => m,
            None => match connection.receiver.recv() {
                Ok(m) => m,
                Err(_) => break,
            },
        };
        match msg {
            Message::Request(req) => {
                if connection
                    .handle_shutdown(&req)
                    .map_err(|e| e.to_string())?
                {
                    return Ok(());
                }
                let resp = server.request(req);
                server.send(Message::Response(resp));
            }
            Message::Notification(n) => {
                // Every notification already waiting (keystrokes typed while the last check
                // ran) is taken before checking once, for the latest text; a request waiting
                // is answered after that check.
                let mut edited = BTreeSet::new();
                let mut changed = server.notification(n, &mut edited);
                while let Ok(m) = connection.receiver.try_recv() {
                    match m {
                        Message::Notification(n) => {
                            changed |= server.notification(n, &mut edited);
                        }
                        other => {
                            next = Some(other);
                            break;
                        }
                    }
                }
                if changed {
                    server.ws.reload();
                    server.publish(&edited);
                }
            }
            Message::Response(_) => {}
        }
    }
    Ok(())
}

struct Server<'c> {
    ws: Workspace,
    out: &'c Connection,
    /// The editor's version of each open document, sent back with its diagnostics.
    versions: HashMap<PathBuf, i32>,
}

/// A request that cannot be answered: the JSON-RPC error code and why.
type Failure = (ErrorCode, String);

fn params<P: DeserializeOwned>(v: Value) -> Result<P, Failure> {
    serde_json::from_value(v)
        .map_err(|e| (ErrorCode::InvalidParams, format!("invalid parameters: {e}")))
}

fn path_of(uri: &Url) -> Option<PathBuf> {
    uri.to_file_path().ok()
}

fn uri_of(path: &Path) -> Option<Url> {
    Url::from_file_path(path).ok()
}

impl Server<'_> {
    fn send(&self, msg: Message) {
        // The editor went away: the receiver loop ends on its own.
        let _ = self.out.sender.send(msg);
    }

    fn notify<N: lsp_types::notification::Notification>(&self, p: N::Params) {
        self.send(Message::Notification(Notification::new(
            N::METHOD.to_string(),
            p,
        )))
    }

    /// Publishes the diagnostics of every file whose diagnostics changed, and those of
    /// `edited` (the documents just changed) in any case: the editor learns that its version
    /// was checked even when nothing in it changed.
    fn publish(&mut self, edited: &BTreeSet<PathBuf>) {
        let mut out = Vec::new();
        for (path, a, diags) in self.ws.changed_diagnostics(edited) {
            let Some(uri) = uri_of(&path) else { continue };
            let diagnostics = diags.iter().filter_map(|d| to_lsp(a, d)).collect();
            out.push(PublishDiagnosticsParams {
                uri,
                diagnostics,
                version: self.versions.get(&path).copied(),
            });
        }
        for p in out {
            self.notify::<notification::PublishDiagnostics>(p);
        }
    }

    /// Takes in a notification; true if the files to check changed (the documents changed
    /// are added to `edited`). The caller checks again.
    fn notification(&mut self, n: Notification, edited: &mut BTreeSet<PathBuf>) -> bool {
        use notification::*;
        match n.method.as_str() {
            DidOpenTextDocument::METHOD => params::<DidOpenTextDocumentParams>(n.params)
                .ok()
                .and_then(|p| {
                    let path = path_of(&p.text_document.uri)?;
                    self.versions.insert(path.clone(), p.text_document.version);
                    self.ws.open.insert(path, p.text_document.text);
                    Some(())
                })
                .is_some(),
            DidChangeTextDocument::METHOD => params::<DidChangeTextDocumentParams>(n.params)
                .ok()
                .and_then(|p| {
                    let path = path_of(&p.text_document.uri)?;
                    // Full sync: the last change is the whole text.
                    let text = p.content_changes.into_iter().next_back()?.text;
                    self.versions.insert(path.clone(), p.text_document.version);
                    self.ws.open.insert(path.clone(), text);
                    edited.insert(path);
                    Some(())
                })
                .is_some(),
            DidCloseTextDocument::METHOD => params::<DidCloseTextDocumentParams>(n.params)
                .ok()
                .and_then(|p| {
                    let path = path_of(&p.text_document.uri)?;
                    self.versions.remove(&path);
                    self.ws.open.remove(&path)
                })
                .is_some(),
            // Files changed on disk (saved, created, deleted, a template edited).
            DidSaveTextDocument::METHOD | DidChangeWatchedFiles::METHOD => true,
            _ => false,
        }
    }

    fn request(&mut self, req: Request) -> Response {
        use request::*;
        let id = req.id.clone();
        let p = req.params;
        let result: Result<Value, Failure> = (|| {
            let v = match req.method.as_str() {
                HoverRequest::METHOD => json(self.hover(params(p)?)),
                GotoDefinition::METHOD => json(self.definition(params(p)?)),
                References::METHOD => json(self.references(params(p)?)),
                Completion::METHOD => json(self.completion(params(p)?)),
                DocumentSymbolRequest::METHOD => json(self.symbols(params(p)?)),
                Formatting::METHOD => json(self.format(params(p)?)),
                PrepareRenameRequest::METHOD => json(self.prepare_rename(params(p)?)),
                Rename::METHOD => {
                    return self
                        .rename(params(p)?)
                        .map(json)
                        .map_err(|e| (ErrorCode::InvalidParams, e))
                }
                CodeActionRequest::METHOD => json(self.code_actions(params(p)?)),
                SemanticTokensFullRequest::METHOD => json(self.semantic(params(p)?)),
                other => {
                    return Err((
                        ErrorCode::MethodNotFound,
                        format!("journey lsp does not answer {other}"),
                    ))
                }
            };
            Ok(v)
        })();
        match result {
            Ok(v) => Response::new_ok(id, v),
            Err((code, e)) => Response::new_err(id, code as i32, e),
        }
    }

    /// The check a document is in, and its id there.
    fn doc(&self, uri: &Url) -> Option<(&Analysis, usize)> {
        let path = path_of(uri)?;
        let a = self.ws.unit(&path)?;
        Some((a, a.id(&path)?))
    }

    /// The check, file and byte offset of a position.
    fn at(&self, doc: &TextDocumentPositionParams) -> Option<(&Analysis, usize, usize)> {
        let (a, id) = self.doc(&doc.text_document.uri)?;
        Some((a, id, a.lines(id).offset(a.text(id), doc.position)))
    }

    fn hover(&self, p: HoverParams) -> Option<Hover> {
        let (a, file, offset) = self.at(&p.text_document_position_params)?;
        let h = a.index.hover(&a.loaded, file, offset)?;
        Some(Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value: h.markdown,
            }),
            range: Some(a.lines(file).range(a.text(file), h.span)),
        })
    }

    fn definition(&self, p: GotoDefinitionParams) -> Option<GotoDefinitionResponse> {
        let (a, file, offset) = self.at(&p.text_document_position_params)?;
        let o = a.index.at(file, offset)?;
        if o.kind == Kind::Template {
            let path = PathBuf::from(&o.key);
            return path.is_file().then(|| {
                GotoDefinitionResponse::Scalar(Location::new(
                    uri_of(&path).expect("an absolute path"),
                    Range::default(),
                ))
            });
        }
        let defs: Vec<Location> = a
            .index
            .same(o)
            .into_iter()
            .filter(|x| x.def)
            .filter_map(|x| location(a, x.file, x.span))
            .collect();
        (!defs.is_empty()).then_some(GotoDefinitionResponse::Array(defs))
    }

    fn references(&self, p: ReferenceParams) -> Option<Vec<Location>> {
        let (a, file, offset) = self.at(&p.text_document_position)?;
        let o = a.index.at(file, offset)?;
        Some(
            a.index
                .same(o)
                .into_iter()
                .filter(|x| p.context.include_declaration || !x.def)
                .filter_map(|x| location(a, x.file, x.span))
                .collect(),
        )
    }

    fn completion(&self, p: CompletionParams) -> Option<CompletionResponse> {
        let path = path_of(&p.text_document_position.text_document.uri)?;
        let (a, file, offset) = self.at(&p.text_document_position)?;
        Some(CompletionResponse::Array(complete::complete(
            a.text(file),
            offset,
            &a.index,
            &path,
        )))
    }

    fn symbols(&self, p: DocumentSymbolParams) -> Option<DocumentSymbolResponse> {
        let (a, id) = self.doc(&p.text_document.uri)?;
        let ast = a.ast(id)?;
        Some(DocumentSymbolResponse::Nested(symbols::outline(
            ast,
            a.text(id),
            a.lines(id),
        )))
    }

    fn format(&self, p: DocumentFormattingParams) -> Option<Vec<TextEdit>> {
        let (a, id) = self.doc(&p.text_document.uri)?;
        symbols::format(a.text(id), a.lines(id))
    }

    fn renamable(
        &self,
        doc: &TextDocumentPositionParams,
    ) -> Option<(&Analysis, &index::Occurrence)> {
        let (a, file, offset) = self.at(doc)?;
        let o = a.index.at(file, offset)?;
        matches!(
            o.kind,
            Kind::Message
                | Kind::Link
                | Kind::Segment
                | Kind::Policy
                | Kind::Topic
                | Kind::Label
                | Kind::StepLabel
        )
        .then_some((a, o))
    }

    fn prepare_rename(&self, p: TextDocumentPositionParams) -> Option<PrepareRenameResponse> {
        let (a, o) = self.renamable(&p)?;
        let loc = location(a, o.file, o.span)?;
        Some(PrepareRenameResponse::Range(loc.range))
    }

    fn rename(&self, p: RenameParams) -> Result<Option<WorkspaceEdit>, String> {
        let Some((a, o)) = self.renamable(&p.text_document_position) else {
            return Ok(None);
        };
        let new = &p.new_name;
        let ident = new.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && new
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if o.kind == Kind::Label {
            if new.contains(['"', '\\', '\n']) || new.is_empty() {
                return Err(format!(
                    "'{new}' cannot be a label: no quote, backslash or new line"
                ));
            }
        } else if !ident {
            return Err(format!(
                "'{new}' is not a name: lowercase letters, digits and _, not starting with a digit"
            ));
        }
        let mut changes: HashMap<Url, Vec<TextEdit>> = HashMap::new();
        for x in a.index.same(o) {
            if let Some(loc) = location(a, x.file, x.span) {
                changes.entry(loc.uri).or_default().push(TextEdit {
                    range: loc.range,
                    new_text: new.clone(),
                });
            }
        }
        Ok(Some(WorkspaceEdit {
            changes: Some(changes),
            ..WorkspaceEdit::default()
        }))
    }

    /// Quick fixes for the diagnostics in range whose hint is "did you mean 'x'?".
    fn code_actions(&self, p: CodeActionParams) -> Option<Vec<CodeActionOrCommand>> {
        let uri = p.text_document.uri;
        let (a, id) = self.doc(&uri)?;
        let (text, lines) = (a.text(id), a.lines(id));
        let from = lines.offset(text, p.range.start);
        let to = lines.offset(text, p.range.end);
        let mut out = Vec::new();
        for d in &a.diagnostics {
            if d.file != Some(id) || d.span.end < from || d.span.start > to {
                continue;
            }
            let Some(name) = d.help.as_deref().and_then(suggestion) else {
                continue;
            };
            let written = text.get(d.span.start..d.span.end).unwrap_or("");
            let span = if written.starts_with('"') && written.len() >= 2 {
                Span::new(d.span.start + 1, d.span.end - 1)
            } else {
                d.span
            };
            let edit = TextEdit {
                range: lines.range(text, span),
                new_text: name.to_string(),
            };
            out.push(CodeActionOrCommand::CodeAction(CodeAction {
                title: format!("Replace with '{name}'"),
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: to_lsp(a, d).map(|d| vec![d]),
                edit: Some(WorkspaceEdit {
                    changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
                    ..WorkspaceEdit::default()
                }),
                is_preferred: Some(true),
                ..CodeAction::default()
            }));
        }
        Some(out)
    }

    fn semantic(&self, p: SemanticTokensParams) -> Option<SemanticTokensResult> {
        let (a, id) = self.doc(&p.text_document.uri)?;
        Some(SemanticTokensResult::Tokens(SemanticTokens {
            result_id: None,
            data: tokens::semantic(a.text(id), a.lines(id), &a.index, id),
        }))
    }
}

fn location(a: &Analysis, file: usize, span: Span) -> Option<Location> {
    Some(Location::new(
        uri_of(a.path(file))?,
        a.lines(file).range(a.text(file), span),
    ))
}

fn json<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("LSP types serialize")
}

/// The name in a `did you mean 'x'?` hint.
fn suggestion(help: &str) -> Option<&str> {
    let rest = help.strip_prefix("did you mean '")?;
    rest.strip_suffix("'?")
}

/// A diagnostic as the editor shows it: `journey check`'s message, its hint on a second
/// line (`help: …`), its label and related places as related information.
fn to_lsp(a: &Analysis, d: &Diagnostic) -> Option<lsp_types::Diagnostic> {
    let file = d.file?;
    let (text, lines) = (a.text(file), a.lines(file));
    let mut message = d.message.clone();
    if let Some(help) = &d.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let mut related = Vec::new();
    let uri = uri_of(a.path(file))?;
    if let Some(label) = d.label.as_ref().filter(|l| **l != d.message) {
        related.push(DiagnosticRelatedInformation {
            location: Location::new(uri, lines.range(text, d.span)),
            message: label.clone(),
        });
    }
    for (rf, rspan, note) in &d.related {
        if let Some(u) = uri_of(a.path(*rf)) {
            related.push(DiagnosticRelatedInformation {
                location: Location::new(u, a.lines(*rf).range(a.text(*rf), *rspan)),
                message: note.clone(),
            });
        }
    }
    Some(lsp_types::Diagnostic {
        range: lines.range(text, d.span),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        source: Some("journey".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..lsp_types::Diagnostic::default()
    })
}
