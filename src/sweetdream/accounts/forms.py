"""Account forms: what the shopper typed, and exactly what is wrong with it, field by field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sweetdream.platform.i18n import gettext as _

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PHONE = re.compile(r"^\+?[0-9 .-]{8,20}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 200  # argon2 handles any length; this only bounds the work an attacker can ask for


def normalise_email(raw: str) -> str:
    return raw.strip().lower()


def _text(data: Mapping[str, str], name: str, limit: int) -> str:
    value = data.get(name, "")
    return " ".join("".join(ch for ch in value if ch.isprintable() or ch == "\n").split())[:limit] if value else ""


@dataclass
class ProfileForm:
    name: str = ""
    phone: str = ""
    address: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, str]) -> ProfileForm:
        form = cls(name=_text(data, "name", 120), phone=_text(data, "phone", 32), address=_text(data, "address", 500))
        form.validate_profile()
        return form

    def validate_profile(self) -> None:
        if not self.name:
            self.errors["name"] = _("Please tell us your name.")
        if self.phone and not PHONE.match(self.phone):
            self.errors["phone"] = _("Enter a phone number of 8 to 20 digits, for example 0901 234 567.")


@dataclass
class RegistrationForm(ProfileForm):
    email: str = ""
    password: str = ""

    @classmethod
    def parse(cls, data: Mapping[str, str]) -> RegistrationForm:
        form = cls(
            name=_text(data, "name", 120),
            phone=_text(data, "phone", 32),
            address=_text(data, "address", 500),
            email=normalise_email(data.get("email", ""))[:254],
            password=data.get("password", ""),
        )
        form.validate_profile()
        if not EMAIL.match(form.email):
            form.errors["email"] = _("Enter an email address like name@example.com.")
        password_error = password_problem(form.password, form.email)
        if password_error:
            form.errors["password"] = password_error
        return form


def password_problem(password: str, email: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return _("Use at least %(num)d characters.") % {"num": MIN_PASSWORD}
    if len(password) > MAX_PASSWORD:
        return _("Use at most %(num)d characters.") % {"num": MAX_PASSWORD}
    if email and password.strip().lower() == email:
        return _("Your password can't be your email address.")
    return None
