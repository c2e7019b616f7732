//! The terminal: draws the book every quarter second (the countdowns move) and turns keys
//! into votes. `y` / `n` answer the selected ballot, arrows or `j` / `k` move, `q` quits.

use super::book::{Ballot, Book, Connection, State, countdown};
use super::lock;
use chrono::Utc;
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use privicore_wire::bus::ballots::Vote;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

const REDRAW: Duration = Duration::from_millis(250);

/// Puts the terminal back however the loop ends (an error, a panic).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = disable_raw_mode();
        let _ = crossterm::execute!(
            std::io::stdout(),
            LeaveAlternateScreen,
            crossterm::cursor::Show
        );
    }
}

pub(super) fn run(
    book: &Mutex<Book>,
    votes: &UnboundedSender<Vote>,
    title: &str,
) -> std::io::Result<()> {
    enable_raw_mode()?;
    let _restore = Restore;
    crossterm::execute!(std::io::stdout(), EnterAlternateScreen)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    loop {
        {
            let mut book = lock(book);
            book.expire(Utc::now());
            terminal.draw(|frame| draw(frame, &book, title))?;
        }
        if !event::poll(REDRAW)? {
            continue;
        }
        let Event::Key(key) = event::read()? else {
            continue;
        };
        if key.kind == KeyEventKind::Release {
            continue;
        }
        let mut book = lock(book);
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => return Ok(()),
            KeyCode::Char(c @ ('y' | 'Y' | 'n' | 'N')) => {
                if let Some(vote) = book.vote(c.eq_ignore_ascii_case(&'y'), Utc::now()) {
                    let _ = votes.send(vote);
                }
            }
            KeyCode::Down | KeyCode::Char('j') => book.select(1),
            KeyCode::Up | KeyCode::Char('k') => book.select(-1),
            _ => {}
        }
    }
}

/// `key: value` pairs of a ballot's attributes, nulls left out.
fn attributes(value: &Value) -> String {
    match value {
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("  "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn ballot_lines<'a>(book: &Book, ballot: &'a Ballot, selected: bool) -> Vec<Line<'a>> {
    let issue = &ballot.issue;
    let left = match book.remaining(ballot, Utc::now()) {
        Some(seconds) => format!("expires in {}", countdown(seconds)),
        None => format!("expires at {}", issue.expires_at),
    };
    let marker = if selected { "> " } else { "  " };
    let mut title_style = Style::default().add_modifier(Modifier::BOLD);
    if selected {
        title_style = title_style.add_modifier(Modifier::REVERSED);
    }
    let state = match &ballot.state {
        State::Open => Span::styled("open", Style::default().fg(Color::Green)),
        State::Sent(vote) => Span::styled(
            format!("voted {}, waiting for the engine", vote.decision),
            Style::default().fg(Color::Yellow),
        ),
    };
    let mut lines = vec![
        Line::from(vec![
            Span::raw(marker),
            Span::styled(issue.title.as_str(), title_style),
            Span::raw("  "),
            Span::styled(left, Style::default().fg(Color::Cyan)),
        ]),
        Line::from(format!("    {}", issue.question)),
    ];
    let attrs = attributes(&issue.attributes);
    if !attrs.is_empty() {
        lines.push(Line::from(format!("    {attrs}")));
    }
    let mut about = format!(
        "    attempt {} of {} · {}",
        issue.attempt, issue.max_attempts, issue.origin
    );
    if let Some(name) = issue.policy.as_ref().and_then(|p| p["name"].as_str()) {
        about.push_str(&format!(" {name}"));
    }
    if let Some(user) = issue.requested_by["username"].as_str() {
        about.push_str(&format!(" · requested by {user}"));
    }
    about.push_str(" · ");
    lines.push(Line::from(vec![Span::raw(about), state]));
    lines.push(Line::from(""));
    lines
}

fn draw(frame: &mut ratatui::Frame, book: &Book, title: &str) {
    let [header, body, notices, help] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    let connection = match &book.connection {
        Connection::Connecting => "connecting".to_owned(),
        Connection::Handshake => "waiting for the engine's welcome".to_owned(),
        Connection::Welcomed => "connected".to_owned(),
        Connection::Lost(why) => format!("connection lost ({why}); retrying"),
        Connection::Ended(why) => format!("stopped: {why}"),
    };
    let roles = if book.roles.is_empty() {
        "none".to_owned()
    } else {
        book.roles.join(", ")
    };
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(Span::styled(
                format!("privicore authenticator · {title}"),
                Style::default().add_modifier(Modifier::BOLD),
            )),
            Line::from(format!("{connection} · roles: {roles}")),
        ]),
        header,
    );

    let ballots = book.ballots();
    let heading = format!("Open ballots ({})", ballots.len());
    let mut lines = Vec::new();
    if ballots.is_empty() {
        lines.push(Line::from("  No open ballots."));
    } else {
        // Keep the selected ballot in view: about five lines each.
        let fits = (body.height.saturating_sub(2) / 5).max(1) as usize;
        let selected = book.selected_index().unwrap_or(0);
        let first = (selected + 1).saturating_sub(fits);
        for (i, ballot) in ballots.iter().enumerate().skip(first) {
            lines.extend(ballot_lines(book, ballot, i == selected));
        }
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(heading)),
        body,
    );

    let shown: Vec<Line> = book
        .notices()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .take(notices.height as usize)
        .rev()
        .map(|n| {
            Line::from(Span::styled(
                n.to_owned(),
                Style::default().fg(Color::Magenta),
            ))
        })
        .collect();
    frame.render_widget(Paragraph::new(shown), notices);
    frame.render_widget(
        Paragraph::new("y yes · n no · ↑/↓ or j/k move · q quit")
            .style(Style::default().add_modifier(Modifier::DIM)),
        help,
    );
}
