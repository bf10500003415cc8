"""Demo catalogue for SweetDream: pure data, no database access.

Used by the seed command and by tests. Everything here is deterministic: the same
categories, products, variants and stock levels on every import.
Prices are VND integers. Images are drawn by ``scripts/draw_demo_images.py``.
A class's session date is the one thing computed, from the day it is seeded (`session_start`), so
the demo's classes are always ahead: a seat is a weekday morning (its label says which) some weeks on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SATURDAY, SUNDAY = 5, 6  # date.weekday()
CLASS_HOUR = time(9, 0)  # shop time


@dataclass(frozen=True)
class DemoVariant:
    label: str
    stock: int
    price_override: int | None = None  # VND; None = the product's price
    low_stock_threshold: int = 3
    # A class seat: its session is on this weekday at CLASS_HOUR, `weeks_ahead` weeks after the first
    # such day after seeding (None: not a class).
    weekday: int | None = None
    weeks_ahead: int = 0


def session_start(variant: DemoVariant, today: date, zone: str) -> datetime | None:
    """When a demo class seat's session starts (UTC): the first `weekday` after `today` (the shop's
    date), `weeks_ahead` weeks on, at CLASS_HOUR shop time. None for goods."""
    if variant.weekday is None:
        return None
    days = (variant.weekday - today.weekday() - 1) % 7 + 1  # 1..7: never today
    day = today + timedelta(days=days, weeks=variant.weeks_ahead)
    return datetime.combine(day, CLASS_HOUR, tzinfo=ZoneInfo(zone)).astimezone(UTC)


@dataclass(frozen=True)
class DemoCategory:
    slug: str
    name: str
    description: str
    position: int


@dataclass(frozen=True)
class DemoProduct:
    slug: str
    name: str
    description: str
    category_slug: str
    price: int
    images: tuple[str, ...]
    featured: bool = False
    created_days_ago: int = 0
    variants: tuple[DemoVariant, ...] = field(default_factory=tuple)
    max_per_customer: int | None = None  # only for classes (a seat is a unit of stock)


CATEGORIES: tuple[DemoCategory, ...] = (
    DemoCategory("banh-kem", "Bánh kem", "Bánh kem tươi cho sinh nhật, kỷ niệm và mọi dịp vui.", 1),
    DemoCategory("banh-mi-ngot", "Bánh mì ngọt", "Bánh mì ngọt, bánh sừng bò và bánh su nướng mỗi sáng.", 2),
    DemoCategory("banh-quy", "Bánh quy", "Bánh quy giòn thơm đóng hộp, hợp làm quà tặng.", 3),
    DemoCategory("banh-trung-thu", "Bánh trung thu", "Bánh nướng, bánh dẻo và hộp quà trung thu.", 4),
    DemoCategory("do-uong", "Đồ uống", "Trà, cà phê và đồ uống pha tại quầy, dùng kèm bánh.", 5),
    DemoCategory("lop-hoc", "Lớp học làm bánh", "Lớp học nhỏ cuối tuần cùng thợ bánh của SweetDream.", 6),
    # Deliberately left without products, to show the empty-category page.
    DemoCategory("banh-theo-mua", "Bánh theo mùa", "Bánh đặc biệt theo mùa lễ hội, sắp ra mắt.", 7),
)


# --- variant helpers ------------------------------------------------------------------------------


def _v(label: str, stock: int, price: int | None = None) -> DemoVariant:
    return DemoVariant(label=label, stock=stock, price_override=price)


def _seat(label: str, stock: int, weekday: int, weeks_ahead: int) -> DemoVariant:
    return DemoVariant(label=label, stock=stock, weekday=weekday, weeks_ahead=weeks_ahead)


def _graded(labels: tuple[str, ...], price: int, step: int, stocks: tuple[int, ...]) -> tuple[DemoVariant, ...]:
    """First label at the product price, each following one ``step`` dearer."""
    return tuple(
        _v(label, stock, price + i * step if i else None)
        for i, (label, stock) in enumerate(zip(labels, stocks, strict=False))
    )


def _sml(price: int, step: int, *stocks: int) -> tuple[DemoVariant, ...]:
    return _graded(("S", "M", "L", "XL"), price, step, stocks)


def _cm(price: int, step: int, *stocks: int) -> tuple[DemoVariant, ...]:
    return _graded(("16cm", "20cm", "24cm"), price, step, stocks)


def _boxes(price: int, box12: int, box6: int, stock12: int) -> tuple[DemoVariant, ...]:
    """Hộp 6 at the product price, Hộp 12 at a small discount per piece."""
    return (_v("Hộp 6", box6), _v("Hộp 12", stock12, price * 2 - box12))


def _p(
    category: str,
    slug: str,
    name: str,
    price: int,
    days: int,
    variants: tuple[DemoVariant, ...],
    description: str,
    *,
    featured: bool = False,
    max_per_customer: int | None = None,
) -> DemoProduct:
    return DemoProduct(
        slug=slug,
        name=name,
        description=description,
        category_slug=category,
        price=price,
        images=(f"/static/img/products/{slug}.svg",),
        featured=featured,
        created_days_ago=days,
        variants=variants,
        max_per_customer=max_per_customer,
    )


# --- products -------------------------------------------------------------------------------------

_CAKES = (
    _p(
        "banh-kem",
        "banh-kem-dau-tay",
        "Bánh kem dâu tây",
        320000,
        3,
        _sml(320000, 90000, 14, 9, 2),
        "Cốt bông lan vani mềm ẩm, kem tươi ít ngọt và dâu tây Đà Lạt tươi mỗi ngày.\n"
        "Soft vanilla sponge, light fresh cream and Da Lat strawberries picked daily.",
        featured=True,
    ),
    _p(
        "banh-kem",
        "banh-kem-socola-bi",
        "Bánh kem socola Bỉ",
        350000,
        10,
        _sml(350000, 100000, 12, 8, 5),
        "Ba lớp cốt socola đậm vị phủ ganache socola Bỉ 70%. Dành cho người mê chocolate.\n"
        "Three layers of dark chocolate sponge under a 70% Belgian chocolate ganache.",
        featured=True,
    ),
    _p(
        "banh-kem",
        "banh-kem-tra-xanh-matcha",
        "Bánh kem trà xanh matcha",
        340000,
        25,
        _sml(340000, 90000, 10, 6, 0),
        "Kem tươi matcha Uji thơm nhẹ, xen lớp đậu đỏ bùi bùi.\nUji matcha cream with a layer of sweet red beans.",
    ),
    _p(
        "banh-kem",
        "banh-kem-bap",
        "Bánh kem bắp",
        280000,
        41,
        _sml(280000, 70000, 18, 11, 7),
        "Bánh kem bắp kiểu Sài Gòn: cốt bông lan nhân kem bắp, phủ hạt bắp ngọt.\n"
        "A Saigon favourite: sponge filled with sweet corn cream, topped with corn kernels.",
    ),
    _p(
        "banh-kem",
        "banh-kem-xoai-chanh-day",
        "Bánh kem xoài chanh dây",
        330000,
        15,
        _cm(330000, 110000, 9, 7, 4),
        "Mousse xoài cát Hòa Lộc chua ngọt với sốt chanh dây, mát lạnh ngày hè.\n"
        "Hoa Loc mango mousse with a tangy passion fruit sauce, cool on a hot day.",
    ),
    _p(
        "banh-kem",
        "banh-kem-ca-phe-sua-da",
        "Bánh kem cà phê sữa đá",
        310000,
        33,
        _sml(310000, 80000, 8, 5, 3),
        "Cốt bánh tẩm cà phê phin Buôn Ma Thuột, kem sữa đặc béo ngậy.\n"
        "Sponge soaked in Buon Ma Thuot phin coffee, with rich condensed-milk cream.",
    ),
    _p(
        "banh-kem",
        "banh-tiramisu",
        "Bánh Tiramisu",
        360000,
        52,
        _cm(360000, 120000, 11, 6, 1),
        "Tiramisu truyền thống với mascarpone, bánh savoiardi và cacao rắc mặt.\n"
        "Classic tiramisu: mascarpone, ladyfingers and a dusting of cocoa.",
    ),
    _p(
        "banh-kem",
        "banh-kem-sinh-nhat-hoa-hong",
        "Bánh kem sinh nhật hoa hồng",
        450000,
        6,
        _sml(450000, 120000, 7, 5, 2),
        "Bánh kem bắt hoa hồng kem bơ thủ công, có thể ghi lời chúc theo yêu cầu.\n"
        "Hand-piped buttercream roses; we write your birthday wishes on request.",
        featured=True,
    ),
    _p(
        "banh-kem",
        "banh-red-velvet-kem-pho-mai",
        "Bánh Red Velvet kem phô mai",
        380000,
        60,
        _sml(380000, 100000, 10, 7, 4),
        "Cốt red velvet đỏ mịn xen lớp kem phô mai Philadelphia chua nhẹ.\n"
        "Fine red velvet layers with a gently tangy Philadelphia cream cheese frosting.",
    ),
    _p(
        "banh-kem",
        "banh-pho-mai-nuong-new-york",
        "Bánh phô mai nướng New York",
        420000,
        74,
        _cm(420000, 130000, 6, 4, 0),
        "Cheesecake nướng kiểu New York, đế bánh quy bơ giòn, béo mà không ngấy.\n"
        "Baked New York cheesecake on a crisp butter biscuit base, rich but never heavy.",
    ),
    _p(
        "banh-kem",
        "banh-mousse-viet-quat",
        "Bánh mousse việt quất",
        370000,
        88,
        _sml(370000, 90000, 9, 6),
        "Mousse việt quất tím mịn, lớp thạch trái cây bóng mặt.\nSmooth blueberry mousse under a glossy fruit jelly.",
    ),
    _p(
        "banh-kem",
        "banh-bong-lan-trung-muoi",
        "Bánh bông lan trứng muối",
        220000,
        18,
        _cm(220000, 60000, 25, 16, 8),
        "Bông lan mềm xốp, sốt bơ trứng, chà bông và trứng muối béo mặn.\n"
        "Airy sponge with egg butter sauce, pork floss and salted egg yolk.",
    ),
    _p(
        "banh-kem",
        "banh-kem-dua-non",
        "Bánh kem dừa non",
        290000,
        97,
        _sml(290000, 70000, 13, 8, 0),
        "Kem dừa non Bến Tre thơm dịu, phủ cơm dừa nạo sợi.\n"
        "Young coconut cream from Ben Tre, covered in shredded coconut.",
    ),
    _p(
        "banh-kem",
        "banh-kem-khoai-mon",
        "Bánh kem khoai môn",
        300000,
        105,
        _sml(300000, 80000, 10, 6, 3),
        "Kem khoai môn tím bùi béo, màu tím tự nhiên không phẩm màu.\n"
        "Creamy taro cream, naturally purple with no colouring.",
    ),
    _p(
        "banh-kem",
        "banh-kem-sau-rieng",
        "Bánh kem sầu riêng",
        390000,
        112,
        _cm(390000, 120000, 5, 3, 2),
        "Sầu riêng Ri6 xay cùng kem tươi, thơm nức cho tín đồ sầu riêng.\n"
        "Ri6 durian blended into fresh cream, for true durian lovers.",
    ),
    _p(
        "banh-kem",
        "banh-kem-cuoi-hai-tang",
        "Bánh kem cưới hai tầng",
        850000,
        66,
        (_v("2 tầng", 2),),
        "Bánh kem hai tầng trang trí hoa tươi cho tiệc cưới, đặt trước 3 ngày.\n"
        "A two-tier wedding cake dressed with fresh flowers; order three days ahead.",
    ),
)

_BREADS = (
    _p(
        "banh-mi-ngot",
        "banh-mi-hoa-cuc-phap",
        "Bánh mì hoa cúc Pháp",
        95000,
        0,
        (_v("Ổ", 20), _v("Hộp 2", 8, 180000)),
        "Brioche hoa cúc kiểu Pháp, nhiều bơ và trứng, thơm hương cam.\n"
        "French brioche rich in butter and eggs, scented with orange.",
        featured=True,
    ),
    _p(
        "banh-mi-ngot",
        "banh-sung-bo-bo-phap",
        "Bánh sừng bò bơ Pháp",
        35000,
        8,
        (_v("Cái", 30), _v("Hộp 6", 10, 195000)),
        "Croissant 27 lớp bơ Pháp, vỏ giòn rụm, ruột xốp như tổ ong.\n"
        "A croissant of 27 layers of French butter: crisp outside, honeycomb inside.",
    ),
    _p(
        "banh-mi-ngot",
        "banh-mi-cha-bong",
        "Bánh mì chà bông",
        32000,
        20,
        (_v("Cái", 40), _v("Hộp 4", 0, 120000)),
        "Bánh mì mềm phết sốt bơ trứng, phủ chà bông gà và hành lá.\n"
        "Soft bun spread with egg butter sauce, topped with chicken floss and spring onion.",
    ),
    _p(
        "banh-mi-ngot",
        "banh-mi-dua-luoi",
        "Bánh mì dứa lưới",
        30000,
        29,
        (_v("Cái", 26), _v("Hộp 4", 9, 110000)),
        "Bánh mì kiểu Hồng Kông với lớp vỏ bơ giòn nứt hình quả dứa.\n"
        "Hong Kong pineapple bun with a crackly butter crust (no pineapple inside).",
    ),
    _p(
        "banh-mi-ngot",
        "banh-mi-sua-tuoi-hokkaido",
        "Bánh mì sữa tươi Hokkaido",
        65000,
        37,
        _sml(65000, 20000, 15, 10, 6),
        "Bánh mì gối sữa tươi mềm như bông, xé từng thớ, hợp ăn sáng.\n"
        "Hokkaido milk loaf, soft as cotton and pulled apart in strands; perfect for breakfast.",
    ),
    _p(
        "banh-mi-ngot",
        "banh-cuon-que",
        "Bánh cuộn quế",
        45000,
        44,
        (_v("Cái", 18), _v("Hộp 4", 2, 170000)),
        "Cinnamon roll cuộn quế đường nâu, phủ kem phô mai khi còn ấm.\n"
        "Brown-sugar cinnamon roll, topped with cream cheese while still warm.",
    ),
    _p(
        "banh-mi-ngot",
        "banh-su-kem",
        "Bánh su kem",
        60000,
        12,
        (_v("Hộp 6", 22), _v("Hộp 12", 14, 110000), _v("Hộp 24", 5, 210000)),
        "Su kem vỏ giòn nhân kem trứng vani mát lạnh, nhỏ xinh vừa miệng.\n"
        "Crisp choux puffs filled with chilled vanilla custard, one bite each.",
    ),
    _p(
        "banh-mi-ngot",
        "banh-pate-so",
        "Bánh pate sô",
        30000,
        55,
        (_v("Cái", 24), _v("Hộp 4", 7, 112000)),
        "Bánh ngàn lớp nhân pate thịt heo, vỏ bơ giòn xốp, ăn nóng ngon nhất.\n"
        "Flaky puff pastry filled with pork pâté, best eaten hot.",
    ),
    _p(
        "banh-mi-ngot",
        "banh-mi-nho-oc-cho",
        "Bánh mì nho óc chó",
        75000,
        63,
        _sml(75000, 25000, 12, 7, 0),
        "Bánh mì nguyên cám với nho khô và óc chó rang, ít đường.\n"
        "Wholemeal loaf with raisins and roasted walnuts, low in sugar.",
    ),
    _p(
        "banh-mi-ngot",
        "banh-mi-bo-toi-pho-mai",
        "Bánh mì bơ tỏi phô mai",
        40000,
        71,
        (_v("Cái", 20), _v("Hộp 4", 6, 150000)),
        "Bánh mì Hàn Quốc nhân kem phô mai, tẩm bơ tỏi mật ong nướng thơm.\n"
        "Korean garlic cream cheese bread, brushed with honey garlic butter and baked.",
    ),
    _p(
        "banh-mi-ngot",
        "banh-mi-socola-xoan",
        "Bánh mì socola xoắn",
        38000,
        80,
        (_v("Cái", 17),),
        "Bánh mì bơ xoắn bện cùng socola đen, vân đẹp mắt.\n"
        "Butter bread braided with dark chocolate for a pretty marbled twist.",
    ),
    _p(
        "banh-mi-ngot",
        "banh-donut-phu-socola",
        "Bánh donut phủ socola",
        32000,
        91,
        (_v("Cái", 28), _v("Hộp 6", 11, 180000)),
        "Donut chiên mềm xốp phủ socola và cốm màu, trẻ con rất thích.\n"
        "Soft fried doughnut dipped in chocolate and sprinkles, a children's favourite.",
    ),
    _p(
        "banh-mi-ngot",
        "banh-bao-nhan-dau-do",
        "Bánh bao nhân đậu đỏ",
        30000,
        99,
        (_v("Cái", 35), _v("Túi 4", 12, 110000)),
        "Bánh bao hấp vỏ trắng mềm, nhân đậu đỏ sên nhuyễn ngọt thanh.\n"
        "Soft white steamed bun filled with smooth, lightly sweet red bean paste.",
    ),
    _p(
        "banh-mi-ngot",
        "banh-mi-khoai-lang-tim",
        "Bánh mì khoai lang tím",
        42000,
        118,
        _sml(42000, 15000, 14, 9, 5),
        "Bánh mì mềm nhân khoai lang tím Đà Lạt nghiền với sữa.\n"
        "Soft bread filled with Da Lat purple sweet potato mashed with milk.",
    ),
)

_COOKIES = (
    _p(
        "banh-quy",
        "banh-quy-bo-dan-mach",
        "Bánh quy bơ Đan Mạch",
        120000,
        14,
        _boxes(120000, 20000, 20, 12),
        "Bánh quy bơ giòn tan theo công thức Đan Mạch, đựng hộp thiếc.\n"
        "Melt-in-the-mouth Danish butter cookies in a tin.",
    ),
    _p(
        "banh-quy",
        "cookie-socola-chip",
        "Cookie socola chip",
        85000,
        5,
        _boxes(85000, 15000, 30, 15),
        "Cookie kiểu Mỹ viền giòn ruột dẻo, đầy socola chip.\n"
        "American-style cookies, crisp at the edge and chewy inside, full of chocolate chips.",
        featured=True,
    ),
    _p(
        "banh-quy",
        "banh-quy-yen-mach-nho-kho",
        "Bánh quy yến mạch nho khô",
        80000,
        22,
        _boxes(80000, 10000, 16, 0),
        "Yến mạch cán dẹt, nho khô và chút quế, ít đường, nhiều chất xơ.\n"
        "Rolled oats, raisins and a pinch of cinnamon; low in sugar, high in fibre.",
    ),
    _p(
        "banh-quy",
        "macaron-phap",
        "Macaron Pháp nhiều vị",
        150000,
        9,
        _boxes(150000, 20000, 10, 4),
        "Macaron vỏ mịn chân đều: vani, dâu, pistachio, chanh và socola.\n"
        "Smooth-shelled macarons: vanilla, strawberry, pistachio, lemon and chocolate.",
        featured=True,
    ),
    _p(
        "banh-quy",
        "banh-quy-gung-hinh-nguoi",
        "Bánh quy gừng hình người",
        90000,
        48,
        (_v("Túi 5", 0), _v("Hộp 10", 6, 170000)),
        "Gingerbread man vị gừng quế ấm áp, trang trí đường icing.\n"
        "Gingerbread men, warm with ginger and cinnamon, decorated with icing.",
    ),
    _p(
        "banh-quy",
        "banh-quy-hanh-nhan-lat",
        "Bánh quy hạnh nhân lát",
        95000,
        57,
        (_v("Hộp 250g", 18), _v("Hộp 500g", 7, 180000)),
        "Bánh tuiles mỏng giòn phủ hạnh nhân lát nướng vàng.\n"
        "Thin crisp tuiles covered in golden toasted almond flakes.",
    ),
    _p(
        "banh-quy",
        "banh-que-dua-cuon",
        "Bánh quế dừa cuộn",
        70000,
        68,
        (_v("Hộp 250g", 22), _v("Hộp 500g", 10, 130000)),
        "Bánh quế cuộn nước cốt dừa Bến Tre, giòn rụm thơm lừng.\nCrisp rolled wafers made with Ben Tre coconut milk.",
    ),
    _p(
        "banh-quy",
        "banh-quy-tra-xanh",
        "Bánh quy trà xanh",
        88000,
        77,
        _boxes(88000, 16000, 14, 6),
        "Bánh quy bơ matcha đắng nhẹ, hợp dùng cùng trà nóng.\n"
        "Matcha butter cookies, gently bitter; lovely with hot tea.",
    ),
    _p(
        "banh-quy",
        "banh-quy-dau-phong",
        "Bánh quy đậu phộng",
        75000,
        86,
        (_v("Hộp 250g", 19), _v("Hộp 500g", 1, 140000)),
        "Đậu phộng rang giã dập trộn bơ đậu phộng, bùi béo giòn xốp.\n"
        "Crushed roasted peanuts and peanut butter: nutty, rich and crunchy.",
    ),
    _p(
        "banh-quy",
        "banh-dau-xanh-hai-duong",
        "Bánh đậu xanh Hải Dương",
        65000,
        101,
        (_v("Hộp 10", 24), _v("Hộp 20", 8, 120000)),
        "Bánh đậu xanh mịn tan trong miệng, ngọt dịu, gói giấy bạc truyền thống.\n"
        "Hai Duong mung bean cakes that melt in the mouth, wrapped in traditional foil.",
    ),
    _p(
        "banh-quy",
        "banh-quy-mut-dau",
        "Bánh quy mứt dâu",
        92000,
        109,
        _boxes(92000, 14000, 11, 5),
        "Bánh quy bơ hình hoa, giữa là mứt dâu tây tự nấu.\n"
        "Flower-shaped butter cookies with our own strawberry jam in the middle.",
    ),
    _p(
        "banh-quy",
        "biscotti-hat-de-cuoi",
        "Biscotti hạt dẻ cười",
        110000,
        120,
        (_v("Hộp 250g", 9),),
        "Biscotti Ý nướng hai lần, giòn chắc với hạt dẻ cười và vỏ cam.\n"
        "Twice-baked Italian biscotti with pistachios and orange peel.",
    ),
)

_MOONCAKES = (
    _p(
        "banh-trung-thu",
        "banh-trung-thu-thap-cam",
        "Bánh trung thu thập cẩm",
        85000,
        30,
        (_v("Cái 150g", 40), _v("Hộp 4", 12, 320000)),
        "Bánh nướng nhân thập cẩm truyền thống: lạp xưởng, hạt sen, mứt bí, vừng rang.\n"
        "Traditional baked mooncake with mixed filling: Chinese sausage, lotus seeds, candied winter melon and sesame.",
    ),
    _p(
        "banh-trung-thu",
        "banh-trung-thu-dau-xanh-trung-muoi",
        "Bánh trung thu đậu xanh trứng muối",
        80000,
        35,
        (_v("Cái 150g", 32), _v("Hộp 4", 0, 300000)),
        "Nhân đậu xanh sên mịn, một lòng đỏ trứng muối béo bùi.\nSmooth mung bean paste around a rich salted egg yolk.",
    ),
    _p(
        "banh-trung-thu",
        "banh-deo-nhan-hat-sen",
        "Bánh dẻo nhân hạt sen",
        65000,
        39,
        (_v("Cái 150g", 21), _v("Hộp 4", 8, 240000)),
        "Vỏ bánh dẻo thơm nước hoa bưởi, nhân hạt sen Huế ngọt thanh.\n"
        "Sticky-rice mooncake scented with pomelo flower water, filled with Hue lotus seed paste.",
    ),
    _p(
        "banh-trung-thu",
        "banh-trung-thu-tra-xanh",
        "Bánh trung thu trà xanh",
        78000,
        46,
        (_v("Cái 150g", 15), _v("Hộp 4", 5, 290000)),
        "Nhân trà xanh Thái Nguyên thanh mát, ít ngọt.\nThai Nguyen green tea filling, fresh and not too sweet.",
    ),
    _p(
        "banh-trung-thu",
        "banh-trung-thu-khoai-mon",
        "Bánh trung thu khoai môn",
        75000,
        50,
        (_v("Cái 150g", 18),),
        "Nhân khoai môn dẻo bùi, thơm mùi lá dứa.\nSoft taro filling with the scent of pandan leaves.",
    ),
    _p(
        "banh-trung-thu",
        "banh-trung-thu-lava-trung-muoi",
        "Bánh trung thu lava trứng muối",
        95000,
        11,
        (_v("Cái 150g", 20), _v("Hộp 4", 6, 360000)),
        "Nhân kem trứng muối chảy lava khi hâm nóng, vỏ bánh mỏng mềm.\n"
        "Salted egg custard that flows like lava when warmed, in a thin soft crust.",
        featured=True,
    ),
    _p(
        "banh-trung-thu",
        "banh-trung-thu-socola",
        "Bánh trung thu socola",
        82000,
        59,
        (_v("Cái 150g", 0), _v("Hộp 4", 3, 310000)),
        "Vỏ cacao, nhân socola đen và hạnh nhân, dành cho các bạn nhỏ.\n"
        "Cocoa crust with dark chocolate and almond filling, made for children.",
    ),
    _p(
        "banh-trung-thu",
        "hop-qua-trung-thu-trang-vang",
        "Hộp quà trung thu Trăng Vàng",
        650000,
        27,
        (_v("Hộp 4", 10), _v("Hộp 6", 4, 820000)),
        "Hộp quà sơn mài kèm trà ô long, tuỳ chọn vị bánh, có thiệp ghi lời chúc.\n"
        "A lacquered gift box with oolong tea, your choice of mooncakes and a greeting card.",
    ),
)

_DRINKS = (
    _p(
        "do-uong",
        "tra-sua-tran-chau-duong-den",
        "Trà sữa trân châu đường đen",
        45000,
        4,
        _sml(45000, 8000, 30, 25, 20),
        "Sữa tươi thanh trùng, trân châu nấu đường đen dẻo thơm.\n"
        "Fresh pasteurised milk with chewy tapioca pearls cooked in brown sugar.",
    ),
    _p(
        "do-uong",
        "ca-phe-sua-da",
        "Cà phê sữa đá",
        35000,
        16,
        _sml(35000, 5000, 40, 35, 22),
        "Cà phê phin Robusta đậm đà với sữa đặc, đúng chất Sài Gòn.\n"
        "Strong Robusta phin coffee with condensed milk over ice, the Saigon way.",
    ),
    _p(
        "do-uong",
        "tra-dao-cam-sa",
        "Trà đào cam sả",
        45000,
        23,
        _sml(45000, 7000, 28, 20, 12),
        "Trà đen ủ lạnh với đào miếng, cam vàng và sả tươi.\n"
        "Cold-brewed black tea with peach slices, orange and fresh lemongrass.",
    ),
    _p(
        "do-uong",
        "matcha-latte",
        "Matcha latte",
        55000,
        31,
        _sml(55000, 8000, 20, 14, 0),
        "Matcha Nhật đánh tay với sữa tươi, dùng nóng hoặc đá.\n"
        "Hand-whisked Japanese matcha with fresh milk, hot or iced.",
    ),
    _p(
        "do-uong",
        "socola-nong",
        "Socola nóng",
        50000,
        45,
        (_v("S", 18), _v("M", 12, 58000)),
        "Socola đen nấu với sữa, thêm marshmallow nướng trên mặt.\n"
        "Dark chocolate melted into milk, topped with toasted marshmallows.",
    ),
    _p(
        "do-uong",
        "tra-vai-hoa-hong",
        "Trà vải hoa hồng",
        48000,
        53,
        _sml(48000, 7000, 22, 16, 9),
        "Trà ô long ướp hoa hồng, vải thiều bóc vỏ ngọt mát.\nRose-scented oolong tea with sweet peeled lychees.",
    ),
    _p(
        "do-uong",
        "sinh-to-bo",
        "Sinh tố bơ",
        50000,
        64,
        _sml(50000, 10000, 12, 8, 2),
        "Bơ sáp Đắk Lắk xay cùng sữa đặc, sánh mịn béo ngậy.\n"
        "Dak Lak avocado blended with condensed milk, thick and creamy.",
    ),
    _p(
        "do-uong",
        "ca-phe-muoi",
        "Cà phê muối",
        42000,
        75,
        _sml(42000, 6000, 26, 18, 11),
        "Cà phê kiểu Huế phủ lớp kem muối mằn mặn.\nHue-style coffee under a layer of lightly salted cream.",
    ),
    _p(
        "do-uong",
        "nuoc-cam-ep-tuoi",
        "Nước cam ép tươi",
        40000,
        94,
        _sml(40000, 10000, 15, 10, 6),
        "Cam sành ép tươi tại quầy, không đường, không đá nếu bạn muốn.\n"
        "Fresh-squeezed orange juice at the counter, no sugar, and no ice if you like.",
    ),
    _p(
        "do-uong",
        "tra-gung-mat-ong",
        "Trà gừng mật ong",
        38000,
        115,
        (_v("M", 25),),
        "Trà gừng tươi pha mật ong rừng, ấm bụng ngày mưa.\nFresh ginger tea with wild honey, warming on a rainy day.",
    ),
)

_CLASSES = (
    _p(
        "lop-hoc",
        "lop-hoc-lam-banh-kem-co-ban",
        "Lớp học làm bánh kem cơ bản",
        850000,
        7,
        (_seat("Sáng thứ Bảy", 10, SATURDAY, 0),),
        "Buổi học 3 giờ: nướng cốt bông lan, đánh kem tươi và trang trí bánh 16cm mang về.\n"
        "A 3-hour class: bake a sponge, whip fresh cream and decorate a 16 cm cake to take home.",
        featured=True,
        max_per_customer=2,
    ),
    _p(
        "lop-hoc",
        "lop-hoc-lam-banh-mi-ngot",
        "Lớp học làm bánh mì ngọt",
        650000,
        13,
        (_seat("Sáng Chủ Nhật", 8, SUNDAY, 0),),
        "Nhồi bột, ủ và tạo hình bánh mì hoa cúc, bánh cuộn quế. Dụng cụ có sẵn tại lớp.\n"
        "Knead, proof and shape brioche and cinnamon rolls. All tools are provided.",
        max_per_customer=2,
    ),
    _p(
        "lop-hoc",
        "lop-hoc-lam-macaron",
        "Lớp học làm macaron",
        750000,
        19,
        (_seat("Sáng thứ Bảy", 12, SATURDAY, 1),),
        "Học kỹ thuật macaronage, bắt vỏ và làm nhân ganache. Phù hợp người đã biết làm bánh.\n"
        "Learn macaronage, piping shells and ganache fillings. For people who already bake.",
        max_per_customer=3,
    ),
    _p(
        "lop-hoc",
        "lop-hoc-lam-banh-trung-thu",
        "Lớp học làm bánh trung thu",
        700000,
        26,
        (_seat("Sáng Chủ Nhật", 9, SUNDAY, 1),),
        "Làm vỏ bánh nướng, bánh dẻo và sên nhân đậu xanh; mỗi học viên mang về 4 bánh.\n"
        "Make baked and sticky-rice mooncake crusts and cook mung bean filling; take 4 mooncakes home.",
        max_per_customer=2,
    ),
)

PRODUCTS: tuple[DemoProduct, ...] = _CAKES + _BREADS + _COOKIES + _MOONCAKES + _DRINKS + _CLASSES
