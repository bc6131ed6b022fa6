"""The simulated retailer's world: countries, people's names, addresses, networks.

Networks are real allocations, checked against the bundled geoip database by the tests, so that
enrichment classifies simulated traffic as it would classify the real thing: boutique offices
sit on national carriers, the marketing and chat integrations on AWS, attackers on Mullvad VPN
(AS 39351, "31173 Services AB"), Tor exits and cloud VPSs. Nothing here is a real person.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    utc_offset: int  # hours; boutique business hours are local
    office: str  # first three octets of the boutique office /24 (corporate)
    home: str  # a residential carrier /24 in the same country (staff working from home)
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    romanised: tuple[tuple[str, str], ...] | None  # (first, last) for e-mail, if not Latin
    cities: tuple[tuple[str, str, str], ...]  # (city, state or "", postal code prefix)
    streets: tuple[str, ...]
    phone: str  # format: '#' is a digit
    language: str


COUNTRIES: tuple[Country, ...] = (
    Country(
        "KR",
        "South Korea",
        9,
        "121.134.10",
        "1.209.5",
        ("민준", "서연", "지우", "하준", "서윤", "도윤", "지민", "예은"),
        ("김", "이", "박", "최", "정", "강", "조", "윤"),
        (
            ("minjun", "kim"),
            ("seoyeon", "lee"),
            ("jiwoo", "park"),
            ("hajun", "choi"),
            ("seoyun", "jung"),
            ("doyun", "kang"),
            ("jimin", "cho"),
            ("yeeun", "yoon"),
        ),
        (("Seoul", "", "06"), ("Busan", "", "48"), ("Incheon", "", "21")),
        ("Apgujeong-ro", "Cheongdam-dong", "Teheran-ro", "Haeundae-ro"),
        "+82 10-####-####",
        "ko",
    ),
    Country(
        "JP",
        "Japan",
        9,
        "126.33.10",
        "153.156.20",
        ("陽翔", "結菜", "蓮", "葵", "湊", "陽葵", "樹", "凛"),
        ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村"),
        (
            ("haruto", "sato"),
            ("yuna", "suzuki"),
            ("ren", "takahashi"),
            ("aoi", "tanaka"),
            ("minato", "ito"),
            ("himari", "watanabe"),
            ("itsuki", "yamamoto"),
            ("rin", "nakamura"),
        ),
        (("Tokyo", "", "104"), ("Osaka", "", "530"), ("Kyoto", "", "600")),
        ("Ginza", "Omotesando", "Shinsaibashi", "Karasuma-dori"),
        "+81 90-####-####",
        "ja",
    ),
    Country(
        "CN",
        "China",
        8,
        "123.112.5",
        "183.6.5",
        ("伟", "芳", "娜", "敏", "静", "磊", "洋", "婷"),
        ("王", "李", "张", "刘", "陈", "杨", "赵", "黄"),
        (
            ("wei", "wang"),
            ("fang", "li"),
            ("na", "zhang"),
            ("min", "liu"),
            ("jing", "chen"),
            ("lei", "yang"),
            ("yang", "zhao"),
            ("ting", "huang"),
        ),
        (("Shanghai", "", "200"), ("Beijing", "", "100"), ("Shenzhen", "", "518")),
        ("Nanjing Road", "Huaihai Road", "Wangfujing", "Shennan Avenue"),
        "+86 138 #### ####",
        "zh",
    ),
    Country(
        "FR",
        "France",
        1,
        "90.3.10",
        "82.64.10",
        ("Camille", "Louis", "Chloé", "Hugo", "Léa", "Arthur", "Manon", "Jules"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"),
        None,
        (("Paris", "", "75"), ("Lyon", "", "69"), ("Nice", "", "06"), ("Cannes", "", "06")),
        (
            "rue du Faubourg Saint-Honoré",
            "avenue Montaigne",
            "rue de la Paix",
            "boulevard de la Croisette",
        ),
        "+33 6 ## ## ## ##",
        "fr",
    ),
    Country(
        "US",
        "United States",
        -5,
        "73.162.10",
        "24.5.10",
        ("Olivia", "Liam", "Emma", "Noah", "Ava", "James", "Sophia", "Lucas"),
        ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis"),
        None,
        (
            ("New York", "NY", "100"),
            ("Beverly Hills", "CA", "902"),
            ("Miami", "FL", "331"),
            ("Dallas", "TX", "752"),
            ("Seattle", "WA", "981"),
            ("Boston", "MA", "021"),
        ),
        ("Fifth Avenue", "Rodeo Drive", "Collins Avenue", "Newbury Street"),
        "+1 (###) ###-####",
        "en",
    ),
    Country(
        "GB",
        "United Kingdom",
        0,
        "109.144.5",
        "86.5.10",
        ("Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Mia"),
        ("Taylor", "Davies", "Evans", "Wilson", "Walker", "Wright", "Thompson", "White"),
        None,
        (("London", "", "W1"), ("Manchester", "", "M1"), ("Edinburgh", "", "EH")),
        ("Bond Street", "Sloane Street", "King Street", "George Street"),
        "+44 7### ######",
        "en",
    ),
    Country(
        "IT",
        "Italy",
        1,
        "79.20.5",
        "93.45.5",
        ("Leonardo", "Sofia", "Francesco", "Giulia", "Alessandro", "Aurora", "Lorenzo", "Ginevra"),
        ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"),
        None,
        (("Milano", "", "201"), ("Roma", "", "001"), ("Firenze", "", "501")),
        ("Via Montenapoleone", "Via Condotti", "Via de' Tornabuoni", "Via della Spiga"),
        "+39 3## ### ####",
        "it",
    ),
    Country(
        "AE",
        "United Arab Emirates",
        4,
        "94.200.5",
        "86.96.5",
        ("Mohammed", "Fatima", "Ahmed", "Mariam", "Omar", "Aisha", "Khalid", "Noura"),
        (
            "Al Mansoori",
            "Al Hashimi",
            "Al Nahyan",
            "Al Suwaidi",
            "Al Mazrouei",
            "Al Falasi",
            "Al Ketbi",
            "Al Shamsi",
        ),
        None,
        (("Dubai", "", "00"), ("Abu Dhabi", "", "00")),
        ("Sheikh Zayed Road", "Financial Centre Road", "Corniche Road"),
        "+971 50 ### ####",
        "ar",
    ),
    Country(
        "SG",
        "Singapore",
        8,
        "116.14.5",
        "165.21.5",
        ("Wei Ling", "Jun Jie", "Hui Min", "Jia Hao", "Xin Yi", "Zhi Hao", "Shu Fen", "Kai Wen"),
        ("Tan", "Lim", "Lee", "Ng", "Ong", "Wong", "Goh", "Chua"),
        None,
        (("Singapore", "", "23"),),
        ("Orchard Road", "Scotts Road", "Marina Boulevard"),
        "+65 9### ####",
        "en",
    ),
    Country(
        "HK",
        "Hong Kong",
        8,
        "113.28.5",
        "219.76.5",
        ("Ka Ho", "Wing Yan", "Chun Kit", "Hoi Yan", "Tsz Hin", "Wai Man", "Ka Yan", "Ho Yin"),
        ("Chan", "Wong", "Leung", "Cheung", "Lau", "Ho", "Lam", "Yeung"),
        None,
        (("Hong Kong", "", ""),),
        ("Canton Road", "Queen's Road Central", "Russell Street"),
        "+852 9### ####",
        "en",
    ),
)
BY_CODE = {c.code: c for c in COUNTRIES}

# Share of employees and of customers per country: a luxury house with Asia and Europe first.
STAFF_SHARE = {
    "KR": 15,
    "JP": 13,
    "CN": 10,
    "FR": 17,
    "US": 16,
    "GB": 10,
    "IT": 8,
    "AE": 4,
    "SG": 4,
    "HK": 3,
}
CUSTOMER_SHARE = {
    "KR": 14,
    "JP": 13,
    "CN": 16,
    "FR": 12,
    "US": 17,
    "GB": 8,
    "IT": 7,
    "AE": 5,
    "SG": 4,
    "HK": 4,
}

DOMAIN = "maison.example"
ORG_ID = "00D5g000004MaIs"

# Integrations that call the API every day from fixed cloud addresses (naive "hosting IP"
# rules fire on them all day): nightly marketing sync over Bulk API 2.0, and a chat widget.
MARKETING_IPS = ("52.95.110.5", "52.95.110.6")  # AWS us-east-1
DRIFT_IPS = ("34.102.5.5", "34.102.5.6")  # Google Cloud

# Attacker infrastructure, one set per scenario so that scenarios stay separate incidents.
MULLVAD = ("193.138.218.10", "185.65.134.10", "45.83.220.5")  # AS 39351, 31173 Services AB
M247 = "89.46.62.5"  # M247 Europe SRL: hosts many commercial VPN exits
TOR_EXITS = ("185.220.101.7", "185.220.101.33", "192.42.116.16")
AWS_RECON = "3.5.140.2"  # AMAZON-02
DIGITALOCEAN = ("159.89.5.5", "138.68.5.5")
VULTR = ("45.77.5.5", "45.77.5.6", "45.77.5.7")  # AS-CHOOPA

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Safari/537.36"
)
SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)
MOBILE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 SalesforceMobileSDK/12.0.0"
)
