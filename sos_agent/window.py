"""The customer window (tkinter): code, status, the deployment's fields, chat, close, join,
and the deployment's topics (a choice shown only when it offers some and no request is open).

It only shows a :class:`~sos_agent.viewmodel.WindowView` and calls :class:`WindowActions`;
the app decides what they do. Importing this module needs tkinter (the app imports it lazily).
"""

from __future__ import annotations

import base64
import io
import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tkinter import messagebox, simpledialog, ttk

from sos_agent.viewmodel import WindowView

WINDOW_CLASS = "SosAgentWindow"  # the X window class, for window managers and tests
CODE_FONT = ("DejaVu Sans Mono", 26, "bold")
TITLE_FONT = ("DejaVu Sans", 15, "bold")
BODY_FONT = ("DejaVu Sans", 10)
STATUS_FONT = ("DejaVu Sans", 12, "bold")


@dataclass(frozen=True)
class WindowActions:
    save_fields: Callable[[dict[str, str]], None]
    send_message: Callable[[str], None]
    close_case: Callable[[], None]
    join: Callable[[str], str | None]  # returns an error text, or None when accepted
    get_help: Callable[[str | None], None]  # the chosen topic, or None
    hidden: Callable[[], None]
    quit: Callable[[], None]


def _logo_image(master: tk.Misc, path: Path, size: int = 48) -> tk.PhotoImage | None:
    try:
        from PIL import Image

        with Image.open(path) as img:
            img = img.convert("RGBA")
            img.thumbnail((size, size))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
        return tk.PhotoImage(master=master, data=base64.b64encode(buf.getvalue()))
    except (OSError, tk.TclError, ValueError):
        return None


class CustomerWindow:
    """One top-level window, hidden (withdrawn) rather than destroyed when closed."""

    def __init__(self, root: tk.Tk, brand, labels: dict[str, str], actions: WindowActions):
        self.root = root
        self.labels = labels
        self.actions = actions
        colors = brand.colors
        self.bg, self.fg = colors.background, colors.text
        self.primary, self.on_primary = colors.primary, colors.on_primary
        self.top = tk.Toplevel(root, bg=self.bg, class_=WINDOW_CLASS)
        self.top.withdraw()
        self.top.title(brand.product_name)
        self.top.protocol("WM_DELETE_WINDOW", self.hide)
        self.top.minsize(420, 560)
        self.logo = _logo_image(self.top, brand.logo_path)
        if self.logo is not None:
            self.top.iconphoto(True, self.logo)
        self._field_widgets: dict[str, tk.Widget] = {}
        self._fields_key: tuple = ()
        self._topics: tuple[str, ...] = ()
        self._chat_count = -1
        self._build(brand)

    # --- layout ----------------------------------------------------------------------------

    def _label(self, parent: tk.Misc, text: str = "", **kw) -> tk.Label:
        kw.setdefault("font", BODY_FONT)
        return tk.Label(parent, text=text, bg=kw.pop("bg", self.bg), fg=kw.pop("fg", self.fg),
                        **kw)

    def _button(self, parent: tk.Misc, text: str, command, primary: bool = False) -> tk.Button:
        if primary:
            return tk.Button(parent, text=text, command=command, bg=self.primary,
                             fg=self.on_primary, activebackground=self.primary,
                             activeforeground=self.on_primary, relief="flat", padx=12, pady=4,
                             font=BODY_FONT)
        return tk.Button(parent, text=text, command=command, relief="groove", padx=10, pady=3,
                         font=BODY_FONT)

    def _build(self, brand) -> None:
        top = self.top
        header = tk.Frame(top, bg=self.primary)
        header.pack(fill="x")
        if self.logo is not None:
            tk.Label(header, image=self.logo, bg=self.primary).pack(side="left", padx=10, pady=8)
        tk.Label(header, text=brand.product_name, font=TITLE_FONT, bg=self.primary,
                 fg=self.on_primary).pack(side="left", pady=8)

        body = tk.Frame(top, bg=self.bg, padx=16, pady=10)
        body.pack(fill="both", expand=True)
        self.welcome = self._label(body, wraplength=400, justify="left")
        self.welcome.pack(anchor="w")

        self.code_label = self._label(body, self.labels["code"])
        self.code_label.pack(anchor="w", pady=(10, 0))
        code_row = tk.Frame(body, bg=self.bg)
        code_row.pack(fill="x")
        self.code_var = tk.StringVar(value="—")
        # A read-only entry: the customer can select and copy the code too.
        self.code_entry = tk.Entry(code_row, textvariable=self.code_var, font=CODE_FONT,
                                   state="readonly", relief="flat", width=12,
                                   readonlybackground=self.bg, fg=self.primary,
                                   justify="left")
        self.code_entry.pack(side="left")
        self.copy_button = self._button(code_row, self.labels["copy"], self.copy_code)
        self.copy_button.pack(side="left", padx=8)

        self.status_var = tk.StringVar()
        self.status = self._label(body, font=STATUS_FONT, textvariable=self.status_var)
        self.status.pack(anchor="w", pady=(4, 8))
        self.error_var = tk.StringVar()
        self._label(body, textvariable=self.error_var, fg="#cf222e").pack(anchor="w")

        self.fields_frame = tk.LabelFrame(body, text=self.labels["details"], bg=self.bg,
                                          fg=self.fg, font=BODY_FONT, padx=8, pady=6)
        self.fields_frame.pack(fill="x", pady=4)

        chat_frame = tk.LabelFrame(body, text=self.labels["chat"], bg=self.bg, fg=self.fg,
                                   font=BODY_FONT, padx=8, pady=6)
        chat_frame.pack(fill="both", expand=True, pady=4)
        self.chat = tk.Text(chat_frame, height=7, wrap="word", state="disabled", font=BODY_FONT,
                            relief="flat", bg="#f6f8fa", fg=self.fg)
        self.chat.tag_configure("mine", foreground=self.primary)
        self.chat.tag_configure("author", font=(BODY_FONT[0], BODY_FONT[1], "bold"))
        self.chat.pack(fill="both", expand=True)
        entry_row = tk.Frame(chat_frame, bg=self.bg)
        entry_row.pack(fill="x", pady=(6, 0))
        self.message = tk.Entry(entry_row, font=BODY_FONT)
        self.message.pack(side="left", fill="x", expand=True)
        self.message.bind("<Return>", lambda e: self._send_message())
        self.send_button = self._button(entry_row, self.labels["send"], self._send_message)
        self.send_button.pack(side="left", padx=(6, 0))

        # Packed just above the buttons when the deployment offers topics (see render).
        self.topic_row = tk.Frame(body, bg=self.bg)
        self._label(self.topic_row, self.labels["topic"]).pack(side="left")
        self.topic_var = tk.StringVar(value=self.labels["any_topic"])
        self.topic_choice = ttk.Combobox(self.topic_row, textvariable=self.topic_var,
                                         state="readonly", width=28, font=BODY_FONT)
        self.topic_choice.pack(side="left", padx=(8, 0))

        buttons = tk.Frame(body, bg=self.bg)
        buttons.pack(fill="x", pady=(10, 0))
        self.buttons = buttons
        self.close_button = self._button(buttons, self.labels["close_case"], self._close_case)
        self.close_button.pack(side="left")
        self.help_button = self._button(buttons, self.labels["help"], self._get_help,
                                        primary=True)
        self.join_button = self._button(buttons, self.labels["have_code"], self._join)
        self.join_button.pack(side="right")

    def _build_fields(self, fields: tuple[tuple[str, str], ...]) -> None:
        for child in self.fields_frame.winfo_children():
            child.destroy()
        self._field_widgets = {}
        for row, (name, label) in enumerate(fields):
            self._label(self.fields_frame, label).grid(row=row, column=0, sticky="nw", pady=2)
            if name == "description":
                widget: tk.Widget = tk.Text(self.fields_frame, height=3, width=34, wrap="word",
                                            font=BODY_FONT)
            else:
                widget = tk.Entry(self.fields_frame, width=34, font=BODY_FONT)
            widget.grid(row=row, column=1, sticky="we", padx=(8, 0), pady=2)
            self._field_widgets[name] = widget
        self.fields_frame.columnconfigure(1, weight=1)
        if fields:
            self._button(self.fields_frame, self.labels["save"], self._save_fields).grid(
                row=len(fields), column=1, sticky="e", pady=(4, 0)
            )

    # --- showing -----------------------------------------------------------------------------

    def render(self, view: WindowView) -> None:
        # The code in the title too: it shows in the taskbar and window switchers.
        self.top.title(f"{view.title} · {view.code}" if view.code != "—" else view.title)
        self.welcome.configure(text=view.welcome)
        self.code_var.set(view.code)
        self.status_var.set(view.status)
        self.error_var.set(view.error or "")
        if view.fields != self._fields_key:
            self._fields_key = view.fields
            self._build_fields(view.fields)
        self._show_topics(view.topics)
        if view.can_close:
            self.help_button.pack_forget()
            self.close_button.pack(side="left")
        else:
            self.close_button.pack_forget()
            self.help_button.pack(side="left")
        if len(view.chat) != self._chat_count:
            self._chat_count = len(view.chat)
            self.chat.configure(state="normal")
            self.chat.delete("1.0", "end")
            for line in view.chat:
                self.chat.insert("end", f"{line.author}: ", ("author",))
                self.chat.insert("end", line.body + "\n", ("mine",) if line.mine else ())
            self.chat.configure(state="disabled")
            self.chat.see("end")

    def _show_topics(self, topics: tuple[str, ...]) -> None:
        if topics == self._topics:
            return
        self._topics = topics
        if not topics:
            self.topic_row.pack_forget()
            return
        choices = (*topics, self.labels["any_topic"])
        self.topic_choice.configure(values=choices)
        if self.topic_var.get() not in choices:
            self.topic_var.set(self.labels["any_topic"])
        self.topic_row.pack(fill="x", pady=(8, 0), before=self.buttons)

    def chosen_topic(self) -> str | None:
        """The topic picked in the window (``None``: no choice offered, or "something else")."""
        topic = self.topic_var.get()
        return topic if self._topics and topic in self._topics else None

    @property
    def shown_code(self) -> str:
        """The text the code field holds, read back from the widget itself."""
        return self.code_entry.get()

    def show(self) -> None:
        self.top.deiconify()
        self.top.lift()
        self.top.focus_force()

    def hide(self) -> None:
        self.top.withdraw()
        self.actions.hidden()

    @property
    def visible(self) -> bool:
        return self.top.state() == "normal"

    # --- actions ---------------------------------------------------------------------------

    def copy_code(self) -> None:
        code = self.code_var.get()
        if code and code != "—":
            self.top.clipboard_clear()
            self.top.clipboard_append(code)
            self.copy_button.configure(text=self.labels["copied"])
            self.top.after(1500, lambda: self.copy_button.configure(text=self.labels["copy"]))

    def _save_fields(self) -> None:
        values = {}
        for name, widget in self._field_widgets.items():
            if isinstance(widget, tk.Text):
                values[name] = widget.get("1.0", "end").strip()
            else:
                values[name] = widget.get().strip()
        self.actions.save_fields(values)

    def _get_help(self) -> None:
        self.actions.get_help(self.chosen_topic())

    def _send_message(self) -> None:
        text = self.message.get().strip()
        if text:
            self.message.delete(0, "end")
            self.actions.send_message(text)

    def _close_case(self) -> None:
        labels = self.labels
        if messagebox.askyesno(labels["close_case"], labels["confirm_close"], parent=self.top):
            self.actions.close_case()

    def _join(self) -> None:
        code = simpledialog.askstring(
            self.labels["have_code"], self.labels["join_prompt"], parent=self.top
        )
        if code:
            error = self.actions.join(code)
            if error:
                messagebox.showerror(self.labels["have_code"], error, parent=self.top)
