//! The UI state, its key handling and the frame layout.

use crate::scene::draw_scene;
use lav_lab::{ControlKind, Session};
use lav_scene::Scene;
use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

pub struct App {
    pub session: Session,
    scene: Result<Scene, String>,
    /// Index of the focused control in the current step's list.
    focus: usize,
    /// The text being typed into a text control.
    editing: Option<String>,
    help: bool,
    /// Scene items scrolled past.
    scroll: usize,
    pub quit: bool,
}

const HELP: &str = "\
←/→        previous / next step
↑/↓, Tab   choose a control
+/-        change a slider (PgUp/PgDn: ten steps)
Enter      toggle, next choice, press a button, or edit text
           (while editing: type, Enter to apply, Esc to cancel)
j/k        scroll the scene
?          this help
q, Esc     quit";

impl App {
    pub fn new(session: Session) -> App {
        let mut app = App {
            session,
            scene: Err(String::new()),
            focus: 0,
            editing: None,
            help: false,
            scroll: 0,
            quit: false,
        };
        app.refresh();
        app
    }

    pub fn scene(&self) -> Result<&Scene, &str> {
        self.scene.as_ref().map_err(String::as_str)
    }

    /// Redraws a step whose work runs in the background: asks the lab again while it
    /// is busy. Returns whether it still is.
    pub fn tick(&mut self) -> bool {
        if self.session.busy() {
            self.refresh();
        }
        self.session.busy()
    }

    fn refresh(&mut self) {
        self.scene = self.session.scene().map_err(|e| e.to_string());
        let n = self.session.step().controls.len();
        self.focus = self.focus.min(n.saturating_sub(1));
    }

    /// Applies one key press.
    pub fn key(&mut self, code: KeyCode, mods: KeyModifiers) {
        if let Some(buf) = &mut self.editing {
            match code {
                KeyCode::Enter => {
                    let text = std::mem::take(buf);
                    self.editing = None;
                    if let Some(c) = self.session.step().controls.get(self.focus).cloned() {
                        let r = c.parse(&text).and_then(|v| self.session.set(c.key, v));
                        self.apply(r);
                    }
                }
                KeyCode::Esc => self.editing = None,
                KeyCode::Backspace => {
                    buf.pop();
                }
                KeyCode::Char(ch) => buf.push(ch),
                _ => {}
            }
            return;
        }
        if self.help {
            self.help = false;
            return;
        }
        let n = self.session.step().controls.len();
        match code {
            KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
            KeyCode::Char('c') if mods.contains(KeyModifiers::CONTROL) => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Right => {
                self.session.next();
                self.scroll = 0;
                self.refresh();
            }
            KeyCode::Left => {
                self.session.prev();
                self.scroll = 0;
                self.refresh();
            }
            KeyCode::Down | KeyCode::Tab if n > 0 => self.focus = (self.focus + 1) % n,
            KeyCode::Up | KeyCode::BackTab if n > 0 => self.focus = (self.focus + n - 1) % n,
            KeyCode::Char('+') | KeyCode::Char('=') | KeyCode::Char(']') => self.nudge(1.0),
            KeyCode::Char('-') | KeyCode::Char('[') => self.nudge(-1.0),
            KeyCode::PageUp => self.nudge(10.0),
            KeyCode::PageDown => self.nudge(-10.0),
            KeyCode::Enter | KeyCode::Char(' ') => self.activate(),
            KeyCode::Char('j') => self.scroll += 1,
            KeyCode::Char('k') => self.scroll = self.scroll.saturating_sub(1),
            _ => {}
        }
    }

    /// Moves the focused slider by `steps` of its step size, within its range.
    fn nudge(&mut self, steps: f64) {
        let Some(c) = self.session.step().controls.get(self.focus).cloned() else {
            return;
        };
        if let ControlKind::Slider { .. } = c.kind {
            let r = self.session.nudge(c.key, steps);
            self.apply(r);
        }
    }

    /// Enter on the focused control: edit text, or one press (the session decides
    /// what a press means for each kind: flip, next choice, count with wrap-around).
    fn activate(&mut self) {
        let Some(c) = self.session.step().controls.get(self.focus).cloned() else {
            return;
        };
        if let ControlKind::Text { .. } = c.kind {
            self.editing = Some(self.session.values().text(&c).to_string());
            return;
        }
        let r = self.session.nudge(c.key, 1.0);
        self.apply(r);
    }

    /// Redraws after a change, or shows why the session refused it.
    fn apply(&mut self, r: lav_lab::Result<()>) {
        match r {
            Ok(()) => self.refresh(),
            Err(e) => self.scene = Err(e.to_string()),
        }
    }
}

/// Draws one frame: header, prose and controls on the left, the scene on the right.
pub fn draw(f: &mut Frame, app: &App) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(38), Constraint::Percentage(62)]).areas(body);
    let s = &app.session;
    let steps = s.steps().len();
    f.render_widget(
        Line::from(vec![
            Span::styled(
                format!(" {} ", s.lesson().title),
                Style::new().bold().reversed(),
            ),
            Span::raw(format!(
                "  step {}/{}: {}  [{}]",
                s.step_index() + 1,
                steps,
                s.lesson_step().title,
                s.step().id
            )),
        ]),
        header,
    );
    draw_prose(f, left, app);
    let mut overflow = false;
    match app.scene() {
        Ok(scene) => overflow = draw_scene(f, right, scene, app.scroll),
        Err(e) => f.render_widget(
            Paragraph::new(e.to_string())
                .wrap(Wrap { trim: false })
                .block(Block::bordered().title(" error ")),
            right,
        ),
    }
    let keys = " ←/→ steps  ↑/↓ controls  +/- adjust  Enter change  ? help  q quit";
    let more = if overflow {
        "   j/k: more of the scene"
    } else {
        ""
    };
    f.render_widget(
        Line::from(format!("{keys}{more}")).style(Style::new().add_modifier(Modifier::DIM)),
        footer,
    );
    if app.help {
        let area = centered(f.area(), 64, 12);
        f.render_widget(Clear, area);
        f.render_widget(
            Paragraph::new(HELP).block(Block::bordered().title(" keys ")),
            area,
        );
    }
}

fn draw_prose(f: &mut Frame, area: Rect, app: &App) {
    let s = &app.session;
    let st = s.lesson_step();
    let mut lines: Vec<Line> = Vec::new();
    for para in st.body.split("\n\n") {
        lines.push(Line::from(para.replace('\n', " ")));
        lines.push(Line::default());
    }
    if !st.try_it.is_empty() {
        lines.push(Line::from(vec![
            Span::styled("Try it: ", Style::new().bold()),
            Span::raw(st.try_it.clone()),
        ]));
        lines.push(Line::default());
    }
    let controls = &s.step().controls;
    if !controls.is_empty() {
        lines.push(Line::styled("Controls", Style::new().bold()));
    }
    for (i, c) in controls.iter().enumerate() {
        let v = s.values();
        let value = match &c.kind {
            ControlKind::Slider { min, max, .. } => format!("{} ({min}..{max})", v.num(c)),
            ControlKind::Toggle => if v.flag(c) { "on" } else { "off" }.to_string(),
            ControlKind::Choice { .. } => v.text(c).to_string(),
            ControlKind::Button { .. } => format!("pressed {}", v.usize(c)),
            ControlKind::Text { .. } => match (&app.editing, i == app.focus) {
                (Some(buf), true) => format!("{buf}▏"),
                _ if v.text(c).is_empty() => "(default)".into(),
                _ => format!("{:?}", v.text(c).chars().take(40).collect::<String>()),
            },
        };
        let marker = if i == app.focus { "▶ " } else { "  " };
        let style = if i == app.focus {
            Style::new().bold()
        } else {
            Style::new()
        };
        lines.push(Line::styled(format!("{marker}{}: {value}", c.label), style));
    }
    f.render_widget(
        Paragraph::new(Text::from(lines))
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(format!(" {} ", st.title))),
        area,
    );
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// Runs the UI until the learner quits. Restores the terminal on every exit path.
pub fn run(session: Session) -> std::io::Result<()> {
    let mut app = App::new(session);
    let mut terminal = ratatui::try_init()?;
    let result = (|| -> std::io::Result<()> {
        while !app.quit {
            terminal.draw(|f| draw(f, &app))?;
            // While the lab computes in the background, redraw its progress; otherwise
            // wait for a key.
            if app.session.busy() && !event::poll(std::time::Duration::from_millis(150))? {
                app.tick();
                continue;
            }
            if let Event::Key(k) = event::read()?
                && k.kind == KeyEventKind::Press
            {
                app.key(k.code, k.modifiers);
            }
        }
        Ok(())
    })();
    ratatui::try_restore()?;
    result
}

/// Shows one fixed scene (a recorded trace) until `q` or Esc: ↑/↓ scroll.
pub fn view(title: &str, scene: &lav_scene::Scene) -> std::io::Result<()> {
    use ratatui::widgets::Borders;
    let mut terminal = ratatui::try_init()?;
    let mut scroll = 0usize;
    let result = (|| -> std::io::Result<()> {
        loop {
            terminal.draw(|f| {
                let area = f.area();
                let block = Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" {title} — ↑/↓ scroll, q quits "));
                let inner = block.inner(area);
                f.render_widget(block, area);
                draw_scene(f, inner, scene, scroll);
            })?;
            if let Event::Key(k) = event::read()?
                && k.kind == KeyEventKind::Press
            {
                match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Down | KeyCode::Char('j') => {
                        scroll = (scroll + 1).min(scene.items.len().saturating_sub(1))
                    }
                    KeyCode::Up | KeyCode::Char('k') => scroll = scroll.saturating_sub(1),
                    _ => {}
                }
            }
        }
    })();
    ratatui::try_restore()?;
    result
}
