"""Draw the demo catalogue's illustrations as small SVG files.

One image per product (static/img/products/<slug>.svg) and per category
(static/img/categories/<slug>.svg). The drawing depends on the category; the colours
are derived from the slug, so re-running the script gives the same files.

    .venv/bin/python scripts/draw_demo_images.py
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from sweetdream.catalog.demo import CATEGORIES, PRODUCTS  # noqa: E402

CREAM = "#fff8ee"
CHOC = "#5b3a29"


def hls(h: float, lightness: float, saturation: float) -> str:
    r, g, b = colorsys.hls_to_rgb(h % 1.0, lightness, saturation)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


@dataclass(frozen=True)
class Palette:
    seed: bytes  # stable pseudo-random bytes for small variations
    hue: float
    bg: str
    blob: str
    main: str
    dark: str
    accent: str

    @classmethod
    def for_slug(cls, slug: str) -> Palette:
        seed = hashlib.sha256(slug.encode()).digest()
        hue = seed[0] / 256
        return cls(
            seed=seed,
            hue=hue,
            bg=hls(hue, 0.94, 0.65),
            blob=hls(hue, 0.89, 0.6),
            main=hls(hue, 0.7, 0.6),
            dark=hls(hue, 0.42, 0.45),
            accent=hls(hue + 0.4, 0.62, 0.7),
        )

    def golden(self, lightness: float = 0.6) -> str:
        """A baked-dough colour, slightly different for each slug."""
        return hls(0.07 + self.seed[1] / 256 * 0.05, lightness, 0.65)

    def bit(self, i: int) -> bool:
        return bool(self.seed[2] >> i & 1)


def cake(p: Palette) -> str:
    tiers = [(80, 200, 240, 120)]
    if p.bit(0):
        tiers.append((130, 130, 140, 76))
    out = ['<ellipse cx="200" cy="322" rx="160" ry="20" fill="#fff" opacity=".9"/>']
    for n, (x, y, w, h) in enumerate(tiers):
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="12" fill="{p.main}"/>')
        out.append(f'<rect x="{x}" y="{y + h * 0.6:.0f}" width="{w}" height="9" fill="{CREAM}" opacity=".8"/>')
        # Frosting with drips: a run of half-circles hanging from different depths.
        drips = "".join(
            f"v{p.seed[3 + n * 12 + i] % 22}a10 10 0 0 1-20 0v-{p.seed[3 + n * 12 + i] % 22}" for i in range(w // 20)
        )
        out.append(f'<path d="M{x} {y + 10}q0-10 10-10h{w - 20}q10 0 10 10v10{drips}z" fill="{CREAM}"/>')
    top = tiers[-1][1]
    if p.bit(1):  # candles
        for cx in (180, 220):
            out.append(
                f'<rect x="{cx - 5}" y="{top - 42}" width="10" height="42" rx="3" fill="{p.accent}"/>'
                f'<ellipse cx="{cx}" cy="{top - 52}" rx="6" ry="10" fill="#ffb62e"/>'
            )
    else:  # berries
        for cx in (170, 200, 230):
            out.append(
                f'<circle cx="{cx}" cy="{top - 10}" r="14" fill="{p.accent}"/>'
                f'<path d="M{cx} {top - 24}q4-10 12-10" stroke="#4c9a52" stroke-width="4" fill="none"/>'
            )
    return "".join(out)


def bread(p: Palette) -> str:
    crust, base, light = p.golden(0.6), p.golden(0.45), p.golden(0.78)
    out = [
        f'<ellipse cx="200" cy="318" rx="150" ry="18" fill="{p.dark}" opacity=".15"/>',
        f'<path d="M70 300C70 140 330 140 330 300z" fill="{crust}"/>',
        f'<path d="M70 298h260v10q-130 20-260 0z" fill="{base}"/>',
    ]
    for dx in (-60, 0, 60):
        out.append(
            f'<path d="M{180 + dx} {235 - abs(dx) // 4}q22-26 48-30" stroke="{light}" '
            f'stroke-width="11" stroke-linecap="round" fill="none"/>'
        )
    if p.bit(0):  # icing drizzle
        out.append(
            f'<path d="M110 220l40 40 30-60 40 60 30-60 40 45" stroke="{p.accent}" stroke-width="7" '
            'stroke-linecap="round" stroke-linejoin="round" fill="none" opacity=".85"/>'
        )
    else:  # seeds
        out.extend(
            f'<ellipse cx="{110 + p.seed[4 + i] % 180}" cy="{205 + p.seed[12 + i] % 60}" rx="5" ry="3" fill="{CREAM}"/>'
            for i in range(8)
        )
    return "".join(out)


def cookie(p: Palette) -> str:
    dough, edge = p.golden(0.68), p.golden(0.5)
    out = [f'<ellipse cx="215" cy="330" rx="150" ry="16" fill="{p.dark}" opacity=".15"/>']
    for cx, cy, r in ((270, 250, 78), (170, 215, 98)):
        out.append(f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="{dough}" stroke="{edge}" stroke-width="6"/>')
        for i in range(7):
            dx = (p.seed[5 + i] / 255 - 0.5) * r * 1.3
            dy = (p.seed[13 + i] / 255 - 0.5) * r * 1.3
            fill = p.accent if i % 3 == 0 else CHOC
            out.append(f'<circle cx="{cx + dx:.0f}" cy="{cy + dy:.0f}" r="{7 + i % 3 * 2}" fill="{fill}"/>')
    return "".join(out)


def mooncake(p: Palette) -> str:
    crust, line = p.golden(0.55), p.golden(0.35)
    scallops = "".join(
        f'<circle cx="{200 + 118 * math.cos(i * math.pi / 8):.0f}" '
        f'cy="{205 + 118 * math.sin(i * math.pi / 8):.0f}" r="24"/>'
        for i in range(16)
    )
    petals = "".join(
        f'<ellipse cx="200" cy="160" rx="14" ry="38" transform="rotate({i * 45} 200 205)"/>' for i in range(8)
    )
    return (
        f'<ellipse cx="200" cy="340" rx="140" ry="16" fill="{p.dark}" opacity=".15"/>'
        f'<g fill="{crust}">{scallops}<circle cx="200" cy="205" r="122"/></g>'
        f'<g stroke="{line}" stroke-width="4"><circle cx="200" cy="205" r="90" fill="{p.golden(0.62)}"/>'
        f'<g fill="none">{petals}</g></g>'
        f'<circle cx="200" cy="205" r="13" fill="{p.accent}"/>'
    )


def drink(p: Palette) -> str:
    out = [
        f'<ellipse cx="200" cy="350" rx="110" ry="14" fill="{p.dark}" opacity=".15"/>',
        f'<rect x="212" y="30" width="16" height="120" rx="6" fill="{p.accent}" transform="rotate(14 220 130)"/>',
        '<path d="M132 130h136l-18 205q-1 12-13 12h-74q-12 0-13-12z" fill="#fff" opacity=".7"/>',
        f'<path d="M137 175h126l-14 158q-1 8-9 8h-80q-8 0-9-8z" fill="{p.main}"/>',
        f'<path d="M137 175h126l-2 22h-122z" fill="{CREAM}" opacity=".8"/>',
        '<rect x="118" y="116" width="164" height="22" rx="11" fill="#fff"/>',
    ]
    if p.bit(0):  # tapioca pearls
        out.extend(f'<circle cx="{160 + i % 5 * 20}" cy="{318 - i // 5 * 18}" r="9" fill="{CHOC}"/>' for i in range(9))
    else:  # ice cubes
        out.extend(
            f'<rect x="{155 + i * 32}" y="{215 + i % 2 * 30}" width="28" height="28" rx="6" fill="#fff" '
            f'opacity=".45" transform="rotate({i * 15 - 15} {169 + i * 32} {229 + i % 2 * 30})"/>'
            for i in range(3)
        )
    return "".join(out)


def whisk_and_bowl(p: Palette) -> str:
    wires = "".join(
        f'<ellipse cx="200" cy="180" rx="{rx}" ry="62" fill="none" stroke="#aab4be" stroke-width="5"/>'
        for rx in (8, 22, 36)
    )
    return (
        f'<ellipse cx="200" cy="350" rx="140" ry="14" fill="{p.dark}" opacity=".15"/>'
        f'<ellipse cx="200" cy="230" rx="130" ry="20" fill="{p.dark}"/>'
        f'<ellipse cx="200" cy="232" rx="116" ry="13" fill="{CREAM}"/>'
        f'<g transform="rotate(-25 200 230)">{wires}'
        f'<rect x="189" y="40" width="22" height="86" rx="11" fill="{p.accent}"/></g>'
        f'<path d="M70 230h260a130 112 0 0 1-260 0z" fill="{p.main}"/>'
        f'<path d="M110 260q20 50 70 66" stroke="#fff" stroke-width="8" stroke-linecap="round" fill="none" '
        'opacity=".5"/>'
    )


DRAWERS: dict[str, Callable[[Palette], str]] = {
    "banh-kem": cake,
    "banh-mi-ngot": bread,
    "banh-quy": cookie,
    "banh-trung-thu": mooncake,
    "do-uong": drink,
    "lop-hoc": whisk_and_bowl,
}


def svg(slug: str, category_slug: str) -> str:
    p = Palette.for_slug(slug)
    blobs = "".join(
        f'<circle cx="{p.seed[20 + i] * 400 // 256}" cy="{p.seed[24 + i] * 400 // 256}" '
        f'r="{30 + p.seed[28 + i] % 50}" fill="{p.blob}"/>'
        for i in range(3)
    )
    body = DRAWERS.get(category_slug, cake)(p)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 400" width="400" height="400">'
        f'<rect width="400" height="400" fill="{p.bg}"/>{blobs}{body}</svg>\n'
    )


def main() -> None:
    jobs = [(ROOT / "static/img/categories" / f"{c.slug}.svg", c.slug, c.slug) for c in CATEGORIES]
    jobs += [(ROOT / "static/img/products" / f"{p.slug}.svg", p.slug, p.category_slug) for p in PRODUCTS]
    for path, slug, category_slug in jobs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(svg(slug, category_slug), encoding="utf-8")
    print(f"wrote {len(jobs)} images")


if __name__ == "__main__":
    main()
