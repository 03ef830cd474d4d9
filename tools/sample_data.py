"""Sample reference data and a sample event log for the Yantai demo jurisdiction.

Run from the repository root::

    python -m tools.sample_data

It writes ``shared/data/yantai.json`` (format ``whistle.jurisdiction/1``) and
``tools/samples/morning.jsonl`` (a morning of 12345 calls and grid reports on
2026-11-21, one ``{"topic", "key", "event"}`` object per line, the event a
CloudEvent as in CONTRACT.md). The output is deterministic: the same bytes on
every run, no network, no randomness beyond hashes of the content.

Places follow the seed reports where they name them (福莱山街道夹河社区菁华公寓,
海信慧园, 墨翠府社区, 恒祥社区, 清洋街道河滨社区第二网格 and 河滨小区, 银河社区松霞小区,
中青路社区第五网格, 富豪花园); everything else is invented but plausible.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from shared.reference import FORMAT, DepartmentKind, Jurisdiction, Level, load_jurisdiction

ROOT = Path(__file__).resolve().parents[1]
JURISDICTION_PATH = ROOT / "shared" / "data" / "yantai.json"
LOG_PATH = ROOT / "tools" / "samples" / "morning.jsonl"

JsonObject = dict[str, Any]

# --------------------------------------------------------------------------------------------------
# Gazetteer: districts, streets, communities, grids, compounds
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompoundSpec:
    name: str
    aliases: tuple[str, ...] = ()
    property_company: str | None = None
    grid: int | None = None  # grid number inside the community; spread evenly when None


@dataclass(frozen=True)
class CommunitySpec:
    code: str
    name: str
    abbr: str  # segment of the grid codes, unique inside the street
    grids: int
    compounds: tuple[CompoundSpec, ...]
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class StreetSpec:
    code: str
    name: str
    abbr: str
    communities: tuple[CommunitySpec, ...]
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class DistrictSpec:
    code: str
    name: str
    abbr: str
    streets: tuple[StreetSpec, ...]


def _k(name: str, *aliases: str, pm: str | None = None, grid: int | None = None) -> CompoundSpec:
    return CompoundSpec(name=name, aliases=aliases, property_company=pm, grid=grid)


def _c(
    code: str,
    name: str,
    abbr: str,
    grids: int,
    *compounds: CompoundSpec,
    aliases: tuple[str, ...] = (),
) -> CommunitySpec:
    return CommunitySpec(code, name, abbr, grids, compounds, aliases)


# Property companies (物业), kind "property".
WANKE = "wanke_wuye"
HAIXIN = "haixin_wuye"
ZHONGHAI = "zhonghai_wuye"
LVCHENG = "lvcheng_wuye"
YEDA = "yeda_wuye"
FUYUAN = "fuyuan_wuye"
JIAYUAN = "jiayuan_wuye"
ANJU = "anju_wuye"
CHENGTOU = "chengtou_wuye"

# fmt: off
DISTRICTS: tuple[DistrictSpec, ...] = (
    DistrictSpec(
        "hbhxq",
        "烟台黄渤海新区",
        "HB",
        (
            StreetSpec(
                "fulaishan",
                "福莱山街道",
                "FLS",
                (
                    _c(
                        "jiahe", "夹河社区", "JH", 9,
                        _k("菁华公寓", "菁华", "青华公寓", pm=YEDA, grid=3),
                        _k("海信慧园", "慧园", "海信慧园小区", "海信惠园", pm=HAIXIN, grid=6),
                        _k("夹河新村"),
                        _k("金桥花园", "金桥小区", pm=JIAYUAN),
                        _k("福莱山庄", pm=YEDA),
                    ),
                    _c(
                        "mocuifu", "墨翠府社区", "MCF", 7,
                        _k("墨翠府", pm=ZHONGHAI),
                        _k("翠湖苑", pm=LVCHENG),
                        _k("丽景苑", "丽景小区", pm=JIAYUAN),
                        _k("珠江花园", "珠江小区", pm=YEDA),
                        _k("天山小区"),
                    ),
                    _c(
                        "hengxiang", "恒祥社区", "HX", 7,
                        _k("恒祥家园", "恒祥小区", pm=YEDA),
                        _k("嵩山小区"),
                        _k("金城公寓", "金城", pm=JIAYUAN),
                        _k("锦绣华庭", pm=WANKE),
                    ),
                    _c(
                        "hengshanlu", "衡山路社区", "HSL", 8,
                        _k("万科城", "万科城小区", pm=WANKE),
                        _k("中信公寓", pm=YEDA),
                        _k("衡山雅苑", pm=JIAYUAN),
                        _k("泰山小区", pm=YEDA),
                    ),
                    _c(
                        "changjianglu", "长江路社区", "CJL", 7,
                        _k("长江小区"),
                        _k("天马相城", "天马", pm=LVCHENG),
                        _k("黄河花园", pm=YEDA),
                        _k("银座公寓", pm=JIAYUAN),
                    ),
                ),
                aliases=("福莱山街道办事处", "福莱山"),
            ),
            StreetSpec(
                "guxian",
                "古现街道",
                "GX",
                (
                    _c(
                        "guxian", "古现社区", "GX", 8,
                        _k("古现一区", pm=YEDA),
                        _k("古现二区", pm=YEDA),
                        _k("古现三区"),
                        _k("古现新苑", pm=YEDA),
                        aliases=("古现村",),
                    ),
                    _c(
                        "hekou", "河口社区", "HK", 6,
                        _k("河口花园", pm=YEDA),
                        _k("河口新村"),
                        _k("滨河湾", pm=LVCHENG),
                        _k("金水湾", pm=ZHONGHAI),
                        aliases=("河口村",),
                    ),
                    _c(
                        "guoao", "国奥社区", "GA", 8,
                        _k("国奥天地", "国奥", pm=WANKE),
                        _k("枫林苑", pm=YEDA),
                        _k("橡树湾", pm=WANKE),
                        _k("逸品嘉园", pm=JIAYUAN),
                    ),
                    _c(
                        "mashanzhai", "马山寨社区", "MSZ", 7,
                        _k("马山寨新居"),
                        _k("马山花园", pm=YEDA),
                        _k("山水龙城", pm=LVCHENG),
                        aliases=("马山寨村",),
                    ),
                    _c(
                        "beicheng", "北城社区", "BC", 6,
                        _k("北城家园", pm=JIAYUAN),
                        _k("北城新苑", pm=JIAYUAN),
                        _k("星河湾", pm=ZHONGHAI),
                        _k("时代公寓"),
                    ),
                ),
                aliases=("古现街道办事处", "古现"),
            ),
            StreetSpec(
                "bajiao",
                "八角街道",
                "BJ",
                (
                    _c(
                        "bajiao", "八角社区", "BJ", 7,
                        _k("八角新居", pm=YEDA),
                        _k("八角花园", pm=YEDA),
                        _k("渔港小区"),
                        aliases=("八角村",),
                    ),
                    _c(
                        "luyang", "芦洋社区", "LY", 6,
                        _k("芦洋家园", pm=JIAYUAN),
                        _k("芦洋新村"),
                        _k("蓝湾小区", pm=YEDA),
                        _k("海景苑", pm=JIAYUAN),
                    ),
                    _c(
                        "lanhai", "蓝海社区", "LH", 8,
                        _k("蓝海公馆", pm=ZHONGHAI),
                        _k("蓝海星城", pm=YEDA),
                        _k("碧海云天", pm=LVCHENG),
                        _k("金海岸花园", "金海岸", pm=WANKE),
                    ),
                    _c(
                        "jinshatan", "金沙滩社区", "JST", 7,
                        _k("金沙滩小区", pm=YEDA),
                        _k("海悦府", pm=WANKE),
                        _k("金沙湾公寓", "金沙湾", pm=JIAYUAN),
                    ),
                ),
                aliases=("八角",),
            ),
            StreetSpec(
                "dajijia",
                "大季家街道",
                "DJJ",
                (
                    _c(
                        "dajijia", "大季家社区", "DJJ", 7,
                        _k("大季家新城", pm=YEDA),
                        _k("季家苑", pm=YEDA),
                        _k("季家新村"),
                        _k("鑫盛小区"),
                    ),
                    _c(
                        "chuwang", "初旺社区", "CW", 5,
                        _k("初旺新居"),
                        _k("渔港花园", pm=YEDA),
                        aliases=("初旺村",),
                    ),
                    _c(
                        "xishan", "西山社区", "XS", 5,
                        _k("西山小区"),
                        _k("绿洲家园", pm=YEDA),
                        aliases=("西山村",),
                    ),
                ),
                aliases=("大季家",),
            ),
        ),
    ),
    DistrictSpec(
        "fushan",
        "福山区",
        "FS",
        (
            StreetSpec(
                "qingyang",
                "清洋街道",
                "QY",
                (
                    _c(
                        "hebin", "河滨社区", "HB", 8,
                        _k("河滨小区", pm=FUYUAN, grid=2),
                        _k("河滨花园", pm=FUYUAN),
                        _k("鑫隆公寓"),
                        _k("永福园小区", "永福园", pm=CHENGTOU),
                        _k("清河苑", pm=FUYUAN),
                    ),
                    _c(
                        "yinhe", "银河社区", "YH", 8,
                        _k("松霞小区", "松霞", "松夏小区", pm=FUYUAN),
                        _k("银河小区", pm=CHENGTOU),
                        _k("银河家园", pm=CHENGTOU),
                        _k("福泰苑", pm=FUYUAN),
                    ),
                    _c(
                        "qingyang", "清洋社区", "QY", 7,
                        _k("清洋小区", pm=CHENGTOU),
                        _k("清洋新村"),
                        _k("清洋佳苑", pm=CHENGTOU),
                        _k("福兴家园", pm=FUYUAN),
                    ),
                    _c(
                        "huifujie", "汇福街社区", "HFJ", 6,
                        _k("汇福花园", pm=FUYUAN),
                        _k("汇福公寓", pm=FUYUAN),
                        _k("金鼎公寓"),
                        _k("福城华府", pm=WANKE),
                    ),
                    _c(
                        "fuxiang", "富祥社区", "FXG", 7,
                        _k("富豪花园", "富豪", pm=FUYUAN),
                        _k("富祥小区", pm=CHENGTOU),
                        _k("祥和家园"),
                    ),
                ),
                aliases=("清洋街道办事处", "清洋"),
            ),
            StreetSpec(
                "fuxin",
                "福新街道",
                "FX",
                (
                    _c(
                        "zhongqinglu", "中青路社区", "ZQL", 8,
                        _k("中青小区", pm=CHENGTOU),
                        _k("鲁东小区", grid=5),
                        _k("福祥苑", pm=FUYUAN),
                        _k("青年公寓"),
                    ),
                    _c(
                        "fuxin", "福新社区", "FX", 7,
                        _k("福新花园", pm=FUYUAN),
                        _k("福新一区", pm=CHENGTOU),
                        _k("福新二区"),
                        _k("新华苑", pm=CHENGTOU),
                    ),
                    _c(
                        "fuhailu", "福海路社区", "FHL", 7,
                        _k("福海花园", pm=FUYUAN),
                        _k("福海小区", pm=FUYUAN),
                        _k("海天名苑", pm=JIAYUAN),
                        _k("福海雅苑", pm=CHENGTOU),
                    ),
                    _c(
                        "fuhui", "福惠社区", "FH", 7,
                        _k("福惠家园", pm=FUYUAN),
                        _k("惠民小区", pm=CHENGTOU),
                        _k("福泽苑", pm=CHENGTOU),
                    ),
                    _c(
                        "chongwen", "崇文社区", "CW", 5,
                        _k("崇文小区"),
                        _k("书香门第", pm=FUYUAN),
                        _k("文化苑"),
                    ),
                ),
                aliases=("福新街道办事处", "福新"),
            ),
            StreetSpec(
                "dongting",
                "东厅街道",
                "DT",
                (
                    _c(
                        "dongting", "东厅社区", "DT", 7,
                        _k("东厅小区"),
                        _k("东厅二区", pm=CHENGTOU),
                        _k("东厅新城", pm=CHENGTOU),
                        _k("鑫泰花园", pm=FUYUAN),
                    ),
                    _c(
                        "xiangyu", "翔宇社区", "XY", 6,
                        _k("翔宇花园", pm=FUYUAN),
                        _k("万科翡翠公园", "翡翠公园", pm=WANKE),
                        _k("福翔家园", pm=CHENGTOU),
                    ),
                    _c(
                        "douyu", "兜余社区", "DY", 5,
                        _k("兜余新居"),
                        _k("同心苑", pm=CHENGTOU),
                        aliases=("兜余村",),
                    ),
                    _c(
                        "yongan", "永安社区", "YA", 5,
                        _k("永安小区", pm=FUYUAN),
                        _k("安居苑", pm=FUYUAN),
                    ),
                ),
                aliases=("东厅",),
            ),
            StreetSpec(
                "menlou",
                "门楼街道",
                "ML",
                (
                    _c(
                        "menlou", "门楼社区", "ML", 7,
                        _k("门楼小区"),
                        _k("湖畔花园", pm=CHENGTOU),
                        _k("门楼新村"),
                    ),
                    _c(
                        "zhangcun", "仉村社区", "ZC", 5,
                        _k("仉村新居"),
                        _k("仉家苑", pm=CHENGTOU),
                        aliases=("仉村",),
                    ),
                    _c(
                        "dingjia", "丁家社区", "DJ", 5,
                        _k("丁家新城", pm=FUYUAN),
                        _k("福丁苑"),
                    ),
                ),
            ),
        ),
    ),
    DistrictSpec(
        "laishan",
        "莱山区",
        "LS",
        (
            StreetSpec(
                "huanghailu",
                "黄海路街道",
                "HHL",
                (
                    _c(
                        "guanhai", "观海社区", "GH", 8,
                        _k("观海苑", pm=ANJU),
                        _k("观海小区", pm=ANJU),
                        _k("观海国际", pm=ZHONGHAI),
                        _k("海天花园", pm=ANJU),
                    ),
                    _c(
                        "haiyun", "海韵社区", "HY", 6,
                        _k("海韵家园", pm=ANJU),
                        _k("海韵小区", pm=ANJU),
                        _k("蓝色港湾", pm=LVCHENG),
                    ),
                    _c(
                        "shuanghe", "双河社区", "SH", 7,
                        _k("双河小区"),
                        _k("双河东苑", pm=ANJU),
                        _k("清和园", pm=ANJU),
                    ),
                    _c(
                        "shengquan", "盛泉社区", "SQ", 6,
                        _k("盛泉家园", pm=ANJU),
                        _k("盛泉山庄", pm=LVCHENG),
                        _k("佳和苑", pm=JIAYUAN),
                    ),
                    _c(
                        "zhujiazhuang", "朱家庄社区", "ZJZ", 5,
                        _k("朱家庄新居"),
                        _k("朱家庄二区"),
                        _k("阳光家园", pm=ANJU),
                        aliases=("朱家庄村",),
                    ),
                ),
            ),
            StreetSpec(
                "chujia",
                "初家街道",
                "CJ",
                (
                    _c(
                        "chujia", "初家社区", "CJ", 8,
                        _k("初家小区", pm=ANJU),
                        _k("中海国际", "中海国际社区", pm=ZHONGHAI),
                        _k("初家新苑", pm=ANJU),
                    ),
                    _c(
                        "gangchengdong", "港城东社区", "GCD", 6,
                        _k("港城花园", pm=ANJU),
                        _k("港城东小区", pm=ANJU),
                        _k("东城国际", pm=WANKE),
                    ),
                    _c(
                        "qingquan", "清泉社区", "QQ", 6,
                        _k("清泉小区"),
                        _k("清泉雅居", pm=ANJU),
                        _k("山海华府", pm=LVCHENG),
                    ),
                    _c(
                        "jindu", "金都社区", "JD", 6,
                        _k("金都花园", pm=JIAYUAN),
                        _k("金都公寓", pm=JIAYUAN),
                        _k("锦都苑", pm=ANJU),
                    ),
                ),
                aliases=("初家",),
            ),
            StreetSpec(
                "binhailu",
                "滨海路街道",
                "BHL",
                (
                    _c(
                        "binhai", "滨海社区", "BH", 8,
                        _k("滨海花园", pm=ANJU),
                        _k("海景湾", pm=WANKE),
                        _k("滨海明珠", pm=ZHONGHAI),
                    ),
                    _c(
                        "yinhai", "银海社区", "YH", 6,
                        _k("银海小区", pm=ANJU),
                        _k("银海公寓"),
                        _k("银海家园", pm=ANJU),
                        _k("海之韵", pm=LVCHENG),
                    ),
                    _c(
                        "dongpo", "东泊社区", "DP", 5,
                        _k("东泊小区", pm=ANJU),
                        _k("东泊新村", pm=ANJU),
                    ),
                    _c(
                        "yangjiazhuang", "杨家庄社区", "YJZ", 5,
                        _k("杨家庄新居"),
                        _k("怡景苑", pm=ANJU),
                        aliases=("杨家庄村",),
                    ),
                ),
            ),
        ),
    ),
)
# fmt: on

NUMERALS = ("一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二")


def grid_code(district: DistrictSpec, street: StreetSpec, community: CommunitySpec, number: int) -> str:
    return f"{district.abbr}-{street.abbr}-{community.abbr}-{number:02d}"


def grid_name(number: int) -> str:
    return f"第{NUMERALS[number - 1]}网格"


def _compound_grid(community: CommunitySpec, index: int) -> int:
    spec = community.compounds[index]
    if spec.grid is not None:
        return spec.grid
    return 1 + index * community.grids // len(community.compounds)


def build_districts() -> list[JsonObject]:
    districts: list[JsonObject] = []
    for district in DISTRICTS:
        streets: list[JsonObject] = []
        for street in district.streets:
            communities: list[JsonObject] = []
            for community in street.communities:
                grids = [
                    {"code": grid_code(district, street, community, n), "name": grid_name(n)}
                    for n in range(1, community.grids + 1)
                ]
                compounds: list[JsonObject] = []
                for i, spec in enumerate(community.compounds):
                    compound: JsonObject = {"name": spec.name}
                    if spec.aliases:
                        compound["aliases"] = list(spec.aliases)
                    compound["grid"] = grid_code(district, street, community, _compound_grid(community, i))
                    if spec.property_company:
                        compound["property_company"] = spec.property_company
                    compounds.append(compound)
                entry: JsonObject = {"code": community.code, "name": community.name}
                if community.aliases:
                    entry["aliases"] = list(community.aliases)
                entry["grids"] = grids
                entry["compounds"] = compounds
                communities.append(entry)
            street_entry: JsonObject = {"code": street.code, "name": street.name}
            if street.aliases:
                street_entry["aliases"] = list(street.aliases)
            street_entry["communities"] = communities
            streets.append(street_entry)
        districts.append({"code": district.code, "name": district.name, "streets": streets})
    return districts


# --------------------------------------------------------------------------------------------------
# Departments
# --------------------------------------------------------------------------------------------------

DEPARTMENTS: tuple[tuple[str, str, DepartmentKind], ...] = (
    ("zhujian", "住建局", "department"),
    ("gongan", "公安分局", "department"),
    ("jiaojing", "公安交警大队", "department"),
    ("zonghe_zhifa", "综合行政执法局", "department"),
    ("shichang_jianguan", "市场监管局", "department"),
    ("xiaofang", "消防救援大队", "department"),
    ("minzheng", "民政局", "department"),
    ("weijian", "卫生健康局", "department"),
    ("sifa", "司法局", "department"),
    ("shengtai_huanjing", "生态环境分局", "department"),
    ("huanwei", "环境卫生服务中心", "department"),
    ("shizheng", "市政设施服务中心", "department"),
    ("yuanlin", "园林绿化服务中心", "department"),
    ("water", "供水公司", "utility"),
    ("heat", "热力公司", "utility"),
    ("power", "供电公司", "utility"),
    ("gas", "燃气公司", "utility"),
    ("community_desk", "社区工作站", "desk"),
    ("street_desk", "街道综治中心", "desk"),
    ("district_desk", "区社会治理服务中心", "desk"),
    (WANKE, "万科物业", "property"),
    (HAIXIN, "海信物业", "property"),
    (ZHONGHAI, "中海物业", "property"),
    (LVCHENG, "绿城物业", "property"),
    (YEDA, "业达物业", "property"),
    (FUYUAN, "福源物业", "property"),
    (JIAYUAN, "嘉园物业", "property"),
    (ANJU, "安居物业", "property"),
    (CHENGTOU, "城投物业", "property"),
)

TRIAGE = {"community": "community_desk", "street": "street_desk"}

# --------------------------------------------------------------------------------------------------
# Categories: code, name, tier, keywords, danger keywords
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategorySpec:
    code: str
    name: str
    tier: Level
    keywords: tuple[str, ...]
    danger: tuple[str, ...] = ()


# fmt: off
# Keywords name the problem, not where it is or who is involved: words that turn up in complaints of
# every kind (楼上, 楼下, 邻居, 对门, 老人, 饭店, 单元门口) are left out, since each would drag calls
# about noise, parking or heating into the wrong desk. Frequent typos and homophones of the hotline's
# transcripts (暖器, 暖汽, 电悌, 燃汽, 拉圾, 躁音, 下水到, 充电装, 坑坑哇哇) are listed with the words.
CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec(
        "heating", "供暖", "community",
        ("供暖", "暖气", "暖气不热", "屋里冷", "家里冷", "暖气片不热", "暖气片凉", "上热下凉", "地暖不热",
         "室温", "温度不达标", "不供暖", "暖气漏水", "暖气管", "回水", "放气", "换热站", "热力", "供热",
         "冻得", "暖气片", "地暖", "暖器", "暖汽", "停暖", "采暖", "取暖费", "测温", "暖和不起来", "不暖和",
         "冰凉", "冰窖", "穿棉袄", "穿着棉袄",
         "供热公司", "热力公司"),
        ("暖气管爆裂", "暖气爆管", "热水喷出"),
    ),
    CategorySpec(
        "water_supply", "供水", "community",
        ("供水", "停水", "没水了", "没水", "来水", "水压低", "水小", "自来水", "水发黄", "水浑浊", "水有异味",
         "水管漏水", "跑水", "水表", "二次供水", "水箱", "水龙头", "上不去水", "停水通知", "水压", "水上不去",
         "没有水", "水费", "水质", "消毒水"),
        ("水管爆裂", "爆管", "水淹"),
    ),
    CategorySpec(
        "power_supply", "供电", "community",
        ("供电", "停电", "没电了", "断电", "跳闸", "电压不稳", "电压低", "灯一闪一闪", "电表", "电表箱",
         "配电箱", "变压器", "电线", "停电通知", "电器烧坏", "电箱", "电缆", "来电", "配电室", "电闸", "总闸",
         "插座", "入户线", "线路老化",
         "供电所", "电路", "保险丝", "忽明忽暗"),
        ("电线裸露", "漏电", "触电", "打火", "冒火花", "电线着火", "变压器冒烟"),
    ),
    CategorySpec(
        "gas", "燃气", "community",
        ("燃气", "天然气", "煤气", "燃气表", "燃气灶", "打不着火", "点不着火", "没气了", "燃气费", "燃气管道",
         "燃气报警器", "燃气改管", "燃气安检", "液化气", "漏气", "臭鸡蛋味", "燃汽"),
        ("煤气味", "燃气味", "燃气泄漏", "闻到气味", "漏气", "报警器响", "燃气爆炸"),
    ),
    CategorySpec(
        "property_service", "物业服务", "property",
        ("物业", "物业费", "物业不管", "物业服务差", "保安", "门禁", "单元门锁", "单元门坏", "道闸",
         "小区大门", "保洁", "楼道灯", "监控坏了", "公共维修", "维修基金", "业委会", "物业不作为", "收费",
         "车位费"),
    ),
    CategorySpec(
        "elevator", "电梯", "property",
        ("电梯", "电梯坏了", "电梯停运", "电梯停了", "电梯异响", "电梯晃", "电梯年检", "电梯维修", "电梯门",
         "电梯按钮", "加装电梯", "电梯维保", "电梯故障", "电悌", "电梯里"),
        ("困人", "被困", "电梯困人", "关在电梯里", "电梯下坠", "电梯坠落", "卡在电梯"),
    ),
    CategorySpec(
        "fire_hazard", "消防隐患", "community",
        ("消防隐患", "消防通道", "堵塞消防通道", "楼道堆物", "楼道堆放", "飞线充电", "电动车进楼",
         "电动车上楼", "私拉电线", "消防栓", "灭火器", "消防设施", "安全出口", "易燃", "杂物", "插线板",
         "飞线", "纸壳", "纸箱", "煤炉", "汽油", "群租", "烟感报警器", "废品", "消防", "私接", "消火栓",
         "煤气罐", "柴火", "楼梯间", "拉线",
         "疏散", "逃生", "防火门", "堵死", "一着火", "液化气罐", "油漆桶", "小作坊"),
        ("着火", "冒烟", "起火", "火灾", "烧起来", "有烟"),
    ),
    CategorySpec(
        "illegal_building", "违建", "street",
        ("违建", "违章建筑", "违法建设", "私搭乱建", "乱搭乱建", "顶楼加盖", "楼顶搭建", "彩钢房", "阳台外扩",
         "圈占", "圈地", "搭棚子", "私建", "封院子", "破坏承重墙", "砸承重墙", "地下室私挖", "承重墙", "加盖",
         "盖房", "盖了", "小房子", "棚子", "外扩", "圈进", "圈起来", "砌", "往外接", "围起来", "栅栏",
         "公共空地", "占为己有", "没有手续", "没手续",
         "平房", "违法的", "自家院子", "私自"),
    ),
    CategorySpec(
        "illegal_parking", "违停", "community",
        ("违停", "乱停车", "乱停乱放", "占道停车", "堵门", "堵住出口", "挡住出口", "车位被占", "僵尸车",
         "停在人行道", "挪车", "占用消防通道", "长期停放", "电动车乱停", "占道", "小区出口", "没留电话",
         "乱停", "随便停", "停满", "停在", "停着", "车主", "私家车", "大货车", "双排", "被车堵", "把路堵",
         "救护车", "地锁", "盲道上停", "拖走", "共享单车"),
    ),
    CategorySpec(
        "noise", "噪声扰民", "community",
        ("噪声扰民", "噪音", "噪声", "扰民", "半夜装修", "装修噪音", "砸墙", "电钻", "广场舞", "音响",
         "施工噪音", "夜间施工", "睡不着", "太吵", "吵死了", "空调外机", "划拳", "割草机", "卸货", "休息",
         "吵", "声音", "音乐", "喇叭", "唱歌", "轰隆", "轰轰", "咚咚", "打桩", "打夯", "电锯", "炸街", "鸣笛",
         "没法睡", "搅拌机", "躁音", "切割", "刺耳", "机器声", "厂房", "破碎锤", "拆楼", "震"),
    ),
    CategorySpec(
        "sanitation", "环境卫生", "property",
        ("环境卫生", "垃圾", "垃圾没人清", "垃圾满了", "垃圾桶", "清运", "臭", "卫生差", "脏乱差", "积水发臭",
         "老鼠", "蟑螂", "小广告", "建筑垃圾", "落叶", "清扫", "扬尘", "垃圾没人收", "装修垃圾", "没人打扫",
         "渣土", "厕所", "苍蝇", "消杀", "脏", "没人收拾", "没人清理", "拉圾", "猫屎", "猫尿", "骚味"),
    ),
    CategorySpec(
        "waste_sorting", "垃圾分类", "community",
        ("垃圾分类", "分类投放", "厨余垃圾", "可回收物", "有害垃圾", "其他垃圾", "分类桶", "混投", "投放点",
         "定时定点", "撤桶", "督导员", "分类垃圾"),
    ),
    CategorySpec(
        "facade", "外墙脱落", "street",
        ("外墙", "外墙脱落", "瓷砖脱落", "外墙瓷砖", "外墙皮", "墙皮掉", "保温层", "外墙保温", "瓷砖", "空鼓",
         "山墙", "墙面开裂", "墙体裂缝", "装饰板", "空调架松动", "广告牌松动", "窗户松动", "广告牌", "装饰",
         "幕墙", "女儿墙", "支架", "墙皮", "碎块", "掉下来", "脱落", "字牌", "招牌", "雨搭", "雨棚", "水泥块",
         "掉渣", "外立面"),
        ("砸", "掉落", "坍塌", "砸伤", "砸到", "往下掉", "坠落"),
    ),
    CategorySpec(
        "road", "道路破损", "community",
        ("道路破损", "路面破损", "坑洼", "坑坑洼洼", "路坏了", "凹凸不平", "路面开裂", "井盖", "井盖破损",
         "人行道砖", "路沿石", "减速带", "沉降", "下陷", "小区主路", "塌下去", "坑", "路塌", "路面", "地砖",
         "马路牙子", "土路", "柏油", "水泥路", "窟窿", "篦子", "井盖松", "坑坑哇哇", "挖开", "没人填",
         "绕着走", "拱起", "高低不平", "崴脚",
         "路不平", "大坑"),
        ("路面塌陷", "井盖丢失", "井盖没了", "没有井盖"),
    ),
    CategorySpec(
        "streetlight", "路灯", "community",
        ("路灯", "路灯不亮", "路灯坏了", "灯不亮", "黑灯瞎火", "照明", "路灯白天亮", "一直亮着", "灯杆",
         "庭院灯", "草坪灯", "太黑", "亮着", "灯"),
        ("灯杆漏电", "灯杆倒"),
    ),
    CategorySpec(
        "drainage", "排水", "community",
        ("排水", "下水道", "下水道堵了", "堵塞", "返水", "冒水", "污水", "污水井", "雨水井", "化粪池", "地漏",
         "排水不畅", "管道堵", "满溢", "漫出", "疏通", "下水", "马桶", "脏水", "排不出去", "一片汪洋", "积水",
         "淹了", "下水管", "排水沟"),
        ("污水倒灌", "地下室进水"),
    ),
    CategorySpec(
        "ev_charging", "充电桩", "community",
        ("充电桩", "充不上电", "新能源车", "装充电桩", "私人充电桩", "充电车棚", "电动车充电", "扫码充电",
         "充电桩坏了", "充电口", "报装", "充电点", "集中充电", "充电", "充电装"),
    ),
    CategorySpec(
        "dog_control", "文明养犬", "community",
        ("文明养犬", "遛狗", "狗不拴绳", "不拴绳", "狗屎", "狗粪", "狗叫", "大狗", "大型犬", "烈性犬",
         "流浪狗", "流浪犬", "犬只", "养狗", "没办证", "狗", "不拴", "牵绳", "狂犬", "拉屎", "野狗", "狗成群",
         "成群的狗", "狗链", "狗绳", "哈士奇", "嚎"),
        ("狗咬人", "被狗咬", "咬伤", "狂犬"),
    ),
    CategorySpec(
        "neighbour_dispute", "邻里纠纷", "community",
        ("邻里纠纷", "邻里", "和邻居", "跟邻居", "纠纷", "吵架", "吵起来", "打起来", "口角", "矛盾", "调解",
         "漏水到楼下", "楼上漏水", "卫生间漏水", "往下滴水", "天花板", "占用楼道", "骂人", "骂", "占了我家",
         "对着我家", "往我家", "冷凝水", "协商", "说和", "闹得很僵", "闹僵", "动手", "滴到我家", "晾", "讲理",
         "闹矛盾", "说不通"),
        ("打起来了", "动刀", "持刀"),
    ),
    CategorySpec(
        "greenery", "绿化", "community",
        ("绿化", "绿化带", "树枝", "修剪", "大树", "枯树", "枯死", "草坪", "毁绿", "种菜", "挡光", "砍树",
         "杨絮", "补种", "倾倒", "树", "枯了", "绿地", "花坛", "草地", "草皮", "压坏", "树木", "树叶",
         "裸土"),
        ("树倒了", "大树倒", "树砸"),
    ),
    CategorySpec(
        "food_safety", "食品安全", "street",
        ("食品安全", "食品", "过期", "变质", "发酸", "发霉", "无证经营", "后厨", "吃坏肚子", "肚子疼",
         "拉肚子", "肚子", "早餐店", "外卖", "卫生许可", "三无产品", "三无", "上吐下泻", "熟食", "检疫",
         "生产日期", "保质期", "黑作坊", "伙食", "食堂", "吃出", "馊", "不新鲜", "奶粉", "中文标签", "假货",
         "小饭桌", "饭菜", "鸡蛋", "又吐又拉",
         "腹泻", "注水肉", "病死", "添加剂"),
        ("食物中毒", "集体腹泻"),
    ),
    CategorySpec(
        "public_security", "治安", "community",
        ("治安", "小偷", "被偷", "被盗", "电瓶被偷", "可疑人员", "陌生人", "聚集", "打架斗殴", "赌博", "传销",
         "诈骗", "巡逻", "报警", "派出所", "偷了", "被撬", "贼", "被人拿走", "骗", "保健品", "打架", "闹事",
         "往下扔", "高空抛物", "冒充", "转账", "扎钉子", "扎胎", "划车", "鬼鬼祟祟", "偷窥", "跟踪", "撬锁",
         "形迹可疑", "不安全", "拉车门", "翻东西"),
        ("持刀", "抢劫", "正在撬门", "打人"),
    ),
    CategorySpec(
        "elderly_care", "养老服务", "community",
        ("养老服务", "独居", "独居老人", "空巢", "孤寡", "一个人住", "养老", "助餐", "长者食堂", "老年食堂",
         "居家养老", "上门服务", "助浴", "失能", "瘫痪", "没人照顾", "护理", "照料", "护工", "送药", "拿药",
         "高龄", "腿脚不", "老年痴呆", "走失", "一个人在家", "老年活动", "量血压", "日托", "照看", "老两口",
         "养老院", "敬老院", "陪护", "助老",
         "行动不便", "八十多", "九十多"),
        ("老人摔倒", "晕倒", "联系不上"),
    ),
    CategorySpec(
        "policy_inquiry", "政策咨询", "community",
        ("政策咨询", "咨询", "政策", "怎么办理", "去哪办", "补贴", "高龄补贴", "社保", "医保", "低保", "户口",
         "居住证", "开证明", "申请", "流程", "材料", "缴费", "截止", "养老保险", "失业", "申领", "怎么领",
         "网上办", "需要哪些", "去哪里办", "手续", "不动产", "几点上班", "老旧小区改造", "改造", "文件"),
    ),
    CategorySpec(
        "other", "其他", "community",
        ("其他", "表扬", "感谢", "锦旗", "建议", "意见建议", "不知道找谁", "找不到部门"),
    ),
)
# fmt: on

# --------------------------------------------------------------------------------------------------
# Duties (职责清单): category -> level -> (lead, assists). Property-tier categories have no
# "property" line: dispatch sends property-level work to the compound's own property company.
# --------------------------------------------------------------------------------------------------

Line = tuple[str, tuple[str, ...]]

DUTIES: dict[str, dict[Level, Line]] = {
    "heating": {
        "community": ("heat", ()),
        "street": ("heat", ("street_desk",)),
        "district": ("zhujian", ("heat", "district_desk")),
    },
    "water_supply": {
        "community": ("water", ()),
        "street": ("water", ("street_desk",)),
        "district": ("zhujian", ("water",)),
    },
    "power_supply": {
        "community": ("power", ()),
        "street": ("power", ("street_desk",)),
        "district": ("power", ("district_desk",)),
    },
    "gas": {
        "community": ("gas", ()),
        "street": ("gas", ("street_desk", "xiaofang")),
        "district": ("zhujian", ("gas", "xiaofang")),
    },
    "property_service": {
        "community": ("community_desk", ()),
        "street": ("street_desk", ("zhujian",)),
        "district": ("zhujian", ("street_desk",)),
    },
    "elevator": {
        "community": ("community_desk", ("shichang_jianguan",)),
        "street": ("shichang_jianguan", ("street_desk",)),
        "district": ("shichang_jianguan", ("zhujian",)),
    },
    "fire_hazard": {
        "community": ("xiaofang", ("community_desk",)),
        "street": ("xiaofang", ("zonghe_zhifa", "street_desk")),
        "district": ("xiaofang", ("zonghe_zhifa", "gongan")),
    },
    "illegal_building": {
        "street": ("zonghe_zhifa", ("street_desk", "zhujian")),
        "district": ("zonghe_zhifa", ("zhujian",)),
    },
    "illegal_parking": {
        "community": ("jiaojing", ("community_desk",)),
        "street": ("jiaojing", ("zonghe_zhifa", "street_desk")),
        "district": ("jiaojing", ("zonghe_zhifa",)),
    },
    "noise": {
        "community": ("community_desk", ("gongan",)),
        "street": ("zonghe_zhifa", ("gongan", "street_desk")),
        "district": ("shengtai_huanjing", ("zonghe_zhifa", "gongan")),
    },
    "sanitation": {
        "community": ("community_desk", ("huanwei",)),
        "street": ("huanwei", ("zonghe_zhifa", "street_desk")),
        "district": ("zonghe_zhifa", ("huanwei",)),
    },
    "waste_sorting": {
        "community": ("community_desk", ("huanwei",)),
        "street": ("huanwei", ("street_desk",)),
        "district": ("zonghe_zhifa", ("huanwei",)),
    },
    "facade": {
        "street": ("zhujian", ("zonghe_zhifa", "street_desk")),
        "district": ("zhujian", ("zonghe_zhifa", "district_desk")),
    },
    "road": {
        "community": ("shizheng", ()),
        "street": ("shizheng", ("street_desk",)),
        "district": ("zhujian", ("shizheng",)),
    },
    "streetlight": {
        "community": ("shizheng", ()),
        "street": ("shizheng", ("street_desk",)),
        "district": ("zhujian", ("shizheng", "power")),
    },
    "drainage": {
        "community": ("shizheng", ("community_desk",)),
        "street": ("shizheng", ("water", "street_desk")),
        "district": ("zhujian", ("shizheng", "water")),
    },
    "ev_charging": {
        "community": ("community_desk", ("power",)),
        "street": ("power", ("street_desk", "zhujian")),
        "district": ("zhujian", ("power", "xiaofang")),
    },
    "dog_control": {
        "community": ("community_desk", ("gongan",)),
        "street": ("gongan", ("zonghe_zhifa", "street_desk")),
        "district": ("gongan", ("zonghe_zhifa",)),
    },
    "neighbour_dispute": {
        "community": ("community_desk", ()),
        "street": ("street_desk", ("sifa", "gongan")),
        "district": ("sifa", ("gongan", "district_desk")),
    },
    "greenery": {
        "community": ("yuanlin", ("community_desk",)),
        "street": ("yuanlin", ("zonghe_zhifa", "street_desk")),
        "district": ("yuanlin", ("zonghe_zhifa",)),
    },
    "food_safety": {
        "street": ("shichang_jianguan", ("street_desk",)),
        "district": ("shichang_jianguan", ("weijian", "gongan")),
    },
    "public_security": {
        "community": ("gongan", ("community_desk",)),
        "street": ("gongan", ("street_desk",)),
        "district": ("gongan", ()),
    },
    "elderly_care": {
        "community": ("community_desk", ("minzheng",)),
        "street": ("minzheng", ("street_desk",)),
        "district": ("minzheng", ("weijian",)),
    },
    "policy_inquiry": {
        "community": ("community_desk", ()),
        "street": ("street_desk", ("minzheng",)),
        "district": ("district_desk", ("minzheng",)),
    },
    "other": {
        "community": ("community_desk", ()),
        "street": ("street_desk", ()),
        "district": ("district_desk", ()),
    },
}

TIME_LIMITS = {
    "emergency": {"accept": "PT30M", "resolve": "PT24H"},
    "urgent": {"accept": "PT2H", "resolve": "P3D"},
    "normal": {"accept": "PT24H", "resolve": "P7D"},
}

# Limits are counted on the clock by default (the contract's defaults); an operator may count an
# urgency in working days (TIME_COUNTING). The holidays are a sample of how a year is written:
# 元旦 and the National Day week, with its make-up working days (调休).
CALENDAR = {
    "counting": {},
    "holidays": ["2026-01-01", "2026-01-02", "2026-01-03", *(f"2026-10-0{d}" for d in range(1, 8))],
    "workdays": ["2026-01-04", "2026-09-27", "2026-10-10"],
}

DUTY_LEVELS: tuple[Level, ...] = ("grid", "community", "street", "district")


def build_duties() -> list[JsonObject]:
    duties: list[JsonObject] = []
    for category in CATEGORIES:
        lines = DUTIES[category.code]
        first: Level = "community" if category.tier == "property" else category.tier
        expected = DUTY_LEVELS[DUTY_LEVELS.index(first) :]
        if tuple(lines) != expected:
            raise ValueError(f"duties of {category.code}: levels {tuple(lines)}, expected {expected}")
        for level, (lead, assist) in lines.items():
            duty: JsonObject = {"category": category.code, "level": level, "lead": lead}
            if assist:
                duty["assist"] = list(assist)
            duties.append(duty)
    return duties


def build_jurisdiction() -> JsonObject:
    return {
        "format": FORMAT,
        "version": "2026.11.1-sample",
        "name": "烟台市（示例辖区）",
        "timezone": "Asia/Shanghai",
        "districts": build_districts(),
        "departments": [{"code": c, "name": n, "kind": k} for c, n, k in DEPARTMENTS],
        "categories": [
            {
                "code": c.code,
                "name": c.name,
                "tier": c.tier,
                "keywords": list(c.keywords),
                **({"danger_keywords": list(c.danger)} if c.danger else {}),
            }
            for c in CATEGORIES
        ],
        "duties": build_duties(),
        "time_limits": TIME_LIMITS,
        "calendar": CALENDAR,
        "triage": TRIAGE,
    }


def check_jurisdiction(j: Jurisdiction) -> None:
    """Checks the pydantic model does not make but intake's matching relies on."""
    problems: list[str] = []
    names: dict[str, str] = {}
    for _, _, compound in j.compounds:
        for text in (compound.name, *compound.aliases):
            if text in names:
                problems.append(f"{text!r} names both {names[text]} and {compound.name}")
            names[text] = compound.name
    for text, owner in names.items():
        for other, other_owner in names.items():
            if other_owner != owner and text in other:
                problems.append(f"{text!r} ({owner}) is part of {other!r} ({other_owner})")
    for street, community, compound in j.compounds:
        for alias in compound.aliases:
            for s, c in j.communities:
                if c is not community and alias in c.name:
                    problems.append(f"alias {alias!r} of {compound.name} is part of {c.name} in {s.name}")
            if len(alias) < 2:
                problems.append(f"alias {alias!r} of {compound.name} in {street.name} is too short")
    codes = [c.code for _, c in j.communities]
    if len(codes) != len(set(codes)):
        problems.append("community codes are not unique")
    for category in j.categories:
        if not 8 <= len(category.keywords) <= 60:
            problems.append(f"category {category.code}: {len(category.keywords)} keywords")
        if category.tier == "property" and (category.code, "property") in j.duty_by_key:
            problems.append(f"category {category.code}: a duty at level property")
    if len(j.categories) != len({c.name for c in j.categories}):
        problems.append("category names are not unique")
    if problems:
        raise ValueError("; ".join(problems))


# --------------------------------------------------------------------------------------------------
# The sample morning: 12345 calls and grid reports on Saturday 2026-11-21, 07:00-11:00 +08:00
# --------------------------------------------------------------------------------------------------

DAY = "20261121"
TZ = timezone(timedelta(hours=8))
CALLS_TOPIC = "hotline.calls.v1"
REPORTS_TOPIC = "grid.reports.v1"
HOTLINE_SOURCE = "hotline/yantai-12345"
GRIDAPP_SOURCE = "gridapp/yantai"
PHOTO_BASE = "https://photos.gridapp.example/yantai/2026/11/21"
EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://whistle.example/samples/morning")

Channel = Literal["phone", "wechat", "app", "web", "mini_program"]
Urgency = Literal["emergency", "urgent", "normal"]
Locate = Literal["names", "codes"] | None


@dataclass(frozen=True)
class Call:
    at: str  # "HH:MM"
    channel: Channel
    content: str
    caller: str | None  # surname + title; the phone number is derived
    place: str | None = None  # compound named by the call (checked against the address)
    address: str | None = None
    hint: str | None = None
    locate: Locate = None  # add a location block from the compound (or street/community below)
    street: str | None = None  # where there is no compound, for `locate`
    community: str | None = None
    urgency: Urgency = "normal"


@dataclass(frozen=True)
class Report:
    at: str
    worker: str
    place: str  # compound whose grid the worker walks
    category: str
    description: str
    address: str
    urgency: Urgency = "normal"
    handled_on_site: bool = False
    photos: int = 0


# Notes on the script of the morning (what downstream logic can find in it):
# - cluster: six heating calls from 夹河社区 (菁华公寓, 海信慧园, 夹河新村, 金桥花园) 07:31-08:07,
#   and a grid worker's confirmation at 08:24;
# - repeats: 富豪花园 renovation noise (07:06, 07:39), 松霞小区 water outage (08:18, 08:36, 09:02),
#   河滨小区4号楼 sewage (09:14, 09:41 and the grid worker at 09:56);
# - emergencies: gas smell at 观海苑 (08:52), a live wire sparking at 东厅小区 (grid, 09:27),
#   a mother trapped in a lift at 中海国际 (10:06);
# - traps for a keyword matcher: "万一着火" (a hypothetical fire), "砸了我家车顶" (a barrier arm,
#   not a facade), 20 degrees and a heating complaint that meets the standard.
# fmt: off
CALLS: tuple[Call, ...] = (
    Call(
        "07:01", "phone",
        "盛泉家园2号楼，暖气从半夜就不热了，现在屋里越来越冷，打热力公司电话一直没人接，是不是管子出问题了？",
        "慕大爷", place="盛泉家园", address="莱山区盛泉家园2号楼1单元", hint="供暖",
    ),
    Call(
        "07:06", "phone",
        "富豪花园6号楼2单元楼上从早上六点半就开始电钻砸墙，周六一大早根本没法睡，找物业说管不了，"
        "装修不是得八点以后吗？",
        "邹女士", place="富豪花园", address="福山区富祥社区富豪花园6号楼2单元", hint="噪声扰民",
        locate="names",
    ),
    Call(
        "07:09", "phone",
        "国奥天地东门口停了辆白色面包车，把小区出口堵得死死的，车上也没留电话，我这上班要迟到了，谁来管管？",
        "周先生", place="国奥天地", address="古现街道国奥天地东门",
    ),
    Call(
        "07:15", "app",
        "锦绣华庭8号楼两部电梯坏了一部，早上剩下一部挤得排长队，坏的那部都停了三天了也没见人来修。",
        "张女士", place="锦绣华庭", address="恒祥社区锦绣华庭8号楼", hint="elevator",
    ),
    Call(
        "07:18", "web",
        "海悦府物业早上七点就开着割草机在楼下修草坪，周六一早吵得人没法睡，跟保安说了也不听。",
        "栾女士", place="海悦府", address="八角街道金沙滩社区海悦府12号楼", hint="noise",
    ),
    Call(
        "07:20", "phone",
        "清洋小区北门到菜市场那段路的路灯好几天都不亮了，早上六点多出来买菜黑咕隆咚的，差点摔一跤。",
        "赵大爷", place="清洋小区", address="清洋街道清洋小区北门",
    ),
    Call(
        "07:24", "wechat",
        "翠湖苑3号楼门口垃圾桶满了两天没人清，塑料袋刮得到处都是，还招野猫，物业保洁是不是没上班？",
        "陈女士", place="翠湖苑", address="墨翠府社区翠湖苑3号楼",
    ),
    Call(
        "07:27", "phone",
        "福海花园14号楼从早上七点开始整栋楼停电了，也没收到停电通知，冰箱里的东西都要坏了，"
        "麻烦供电那边查一下。",
        "吴先生", place="福海花园", address="福新街道福海路社区福海花园14号楼", hint="power_supply",
        locate="codes",
    ),
    # The heating cluster in 夹河社区.
    Call(
        "07:31", "phone",
        "菁华公寓3号楼，暖气片摸着就是温乎的，屋里才十五度，老伴早上冻得直咳嗽，供暖都一个礼拜了还这样，"
        "麻烦给热力公司说说。",
        "孙大爷", place="菁华公寓", address="福莱山街道夹河社区菁华公寓3号楼2单元", hint="供暖",
        locate="names",
    ),
    Call(
        "07:39", "phone",
        "6号楼有户装修的，七点不到就叮叮当当砸墙，我家孩子今天上午有考试，想多睡会儿都不行，麻烦管一管。",
        "隋先生", place="富豪花园", address="富豪花园6号楼",
    ),
    Call(
        "07:44", "wechat",
        "你好，我家是菁华公寓5号楼东户，从昨天晚上开始暖气就不热了，早上起来屋里冷得穿羽绒服，"
        "楼上楼下也都说不热。",
        "王女士", place="菁华公寓", address="菁华公寓5号楼",
    ),
    Call(
        "07:52", "phone",
        "海信慧园12号楼，暖气回水管冰凉，家里有个三个月大的孩子，屋里17度都不到，物业让找热力，"
        "热力电话一直占线。",
        "马先生", place="海信慧园", address="黄渤海新区海信慧园12号楼1单元1102", hint="heating",
    ),
    Call(
        "07:58", "app",
        "夹河新村2号楼3楼，家里就一个八十多岁的老人，暖气一点都不热，老人有心脏病怕冷，麻烦尽快派人来看看。",
        "刘女士", place="夹河新村", address="夹河社区夹河新村2号楼", urgency="urgent",
    ),
    Call(
        "08:03", "phone",
        "金桥花园7号楼暖气片上热下凉，放了气也不管用，今天早上屋里量了16度，这个温度不达标吧？",
        "曲先生", place="金桥花园", address="金桥花园7号楼", hint="供暖",
    ),
    Call(
        "08:07", "mini_program",
        "菁华公寓1号楼也不热，整个小区好像都有问题，是不是换热站出故障了？能不能给个说法什么时候恢复。",
        "姜女士", place="菁华公寓", address="福莱山街道夹河社区菁华公寓1号楼", locate="names",
    ),
    # The rest of the morning.
    Call(
        "08:12", "phone",
        "我今年八十了，听说有高龄补贴，我们兜余这边去哪办、要带什么材料？我腿脚不好，能不能上门办？",
        "姜大爷", address="东厅街道兜余社区", hint="政策咨询", locate="names", street="东厅街道",
        community="兜余社区",
    ),
    Call(
        "08:15", "web",
        "北城家园物业费越收越贵，单元门禁坏了一个多月不修，楼道灯也不亮，打物业电话要么不接要么推，"
        "希望有关部门管管。",
        "黄先生", place="北城家园", address="古现街道北城社区北城家园",
    ),
    Call(
        "08:18", "phone",
        "松霞小区9号楼从早上七点多就没水了，也没看到停水通知，做饭洗漱都没法弄，问问什么时候能来水？",
        "宋女士", place="松霞小区", address="清洋街道银河社区松霞小区9号楼", hint="water_supply",
        locate="names",
    ),
    Call(
        "08:25", "phone",
        "天马相城5号楼楼上卫生间漏水，我家卫生间顶棚都泡了往下滴水，找楼上好几回都不开门，物业也协调不了。",
        "高女士", place="天马相城", address="福莱山街道长江路社区天马相城5号楼",
    ),
    Call(
        "08:29", "app",
        "万科翡翠公园地下车库想装个私人充电桩，供电公司说要物业出证明，物业死活不给盖章，说怕着火，"
        "这合理吗？",
        "冯先生", place="万科翡翠公园", address="东厅街道万科翡翠公园", hint="充电桩",
    ),
    Call(
        "08:33", "phone",
        "海景苑小区里好几个人早上遛大狗不拴绳，刚才一条金毛冲着我孩子扑过来，孩子吓得直哭，能不能管管？",
        "孔女士", place="海景苑", address="八角街道芦洋社区海景苑",
    ),
    Call(
        "08:36", "wechat",
        "松霞小区停水了，11号楼也没水，家里老人等着吃药都得下楼买矿泉水，"
        "供水公司能不能说一下是哪里出了问题。",
        "林先生", place="松霞小区", address="松霞小区11号楼",
    ),
    Call(
        "08:44", "phone",
        "长江路和黄河路路口往东五十米，人行道上有个井盖不见了，就拿个破纸箱盖着，晚上根本看不见，太危险了。",
        "郑先生", address="福莱山街道长江路与黄河路交叉口东侧人行道", hint="道路破损", locate="names",
        street="福莱山街道", community="长江路社区", urgency="urgent",
    ),
    Call(
        "08:48", "wechat",
        "初家小区的垃圾分类投放点只有早上七点到九点开，上班的根本赶不上，别的时间桶都撤了，垃圾只能拎着走，"
        "能不能调整一下时间？",
        "初女士", place="初家小区", address="初家街道初家小区",
    ),
    Call(
        "08:52", "phone",
        "观海苑5号楼2单元一进楼道就闻到很大的煤气味，好像是三楼那家传出来的，敲门没人应，"
        "赶紧派燃气公司的人来！",
        "栾先生", place="观海苑", address="莱山区黄海路街道观海社区观海苑5号楼2单元", hint="燃气",
        locate="names", urgency="emergency",
    ),
    Call(
        "08:57", "phone",
        "滨海花园18号楼顶楼那家在楼顶上搭了个彩钢房，这两天还在电焊，楼顶是大家公共的，楼下担心漏水和承重。",
        "慕先生", place="滨海花园", address="滨海路街道滨海社区滨海花园18号楼", hint="违建",
    ),
    Call(
        "09:02", "phone",
        "我是松霞10号楼的，一早上都没水，水龙头拧开就是嗤嗤响，楼下说是外面管子坏了，到底啥时候能修好？",
        "于大爷", place="松霞小区", address="福山区松霞小区10号楼",
    ),
    Call(
        "09:05", "mini_program",
        "福新花园南门那家早餐店，今天早上买的豆浆喝着发酸，孩子喝完肚子疼，看后厨也挺脏的，"
        "希望市场监管去查一下。",
        "衣女士", place="福新花园", address="福新街道福新花园南门沿街早餐店", hint="食品安全",
    ),
    Call(
        "09:10", "phone",
        "金沙湾公寓地下车库昨晚好几辆电动车电瓶被偷了，我家的也没了，物业说监控看不清，已经报了警，"
        "想问问后续谁跟进。",
        "孙先生", place="金沙湾公寓", address="八角街道金沙湾公寓地下车库",
    ),
    Call(
        "09:14", "phone",
        "河滨小区4号楼一单元下水道返水，一楼卫生间地漏往上冒脏水，味儿特别大，物业来看了说是外面主管道堵了。",
        "杨女士", place="河滨小区", address="福山区清洋街道河滨社区河滨小区4号楼", hint="排水",
        locate="codes",
    ),
    Call(
        "09:18", "phone",
        "中青小区11号楼，我家燃气灶从昨天开始就打不着火，燃气表里还有钱，是不是表坏了，"
        "燃气公司能不能来人看看？",
        "王大爷", place="中青小区", address="福新街道中青路社区中青小区11号楼", hint="gas",
    ),
    Call(
        "09:21", "web",
        "海信慧园7号楼西山墙外墙瓷砖又往下掉了，昨晚掉下来好几块砸在绿化带里，幸亏没砸着人，"
        "楼下就是孩子上学走的路。",
        "于女士", place="海信慧园", address="福莱山街道夹河社区海信慧园7号楼西侧", hint="外墙脱落",
        urgency="urgent",
    ),
    Call(
        "09:25", "phone",
        "福惠家园6号楼前那棵大杨树，树枝都伸到我家窗户上了，刮风就敲玻璃，屋里也挡光，想请园林的来修剪一下。",
        "刘先生", place="福惠家园", address="福新街道福惠社区福惠家园6号楼",
    ),
    Call(
        "09:29", "phone",
        "清泉雅居对门邻居把鞋柜、纸箱子全堆在我家门口楼道里，说了几次还骂人，想请社区出面调解一下。",
        "魏女士", place="清泉雅居", address="初家街道清泉社区清泉雅居3号楼",
    ),
    Call(
        "09:33", "app",
        "观海国际3号楼地暖，室温就二十度出头，温控阀也开到最大了，热力公司说这算正常，"
        "想问问供暖温度标准到底是多少？",
        "张先生", place="观海国际", address="莱山区观海国际3号楼",
    ),
    Call(
        "09:37", "phone",
        "河口花园东门道闸坏了，抬杆老是落下来，今天早上又砸了我家车顶，物业让我自己找保险，这事到底谁负责？",
        "宋先生", place="河口花园", address="古现街道河口花园东门", hint="物业服务",
    ),
    Call(
        "09:41", "phone",
        "河滨小区4号楼南边的污水井往外冒水，流得满路都是，老人孩子走路都得绕着走，赶紧找人来疏通一下吧。",
        "徐先生", place="河滨小区", address="河滨小区4号楼南侧",
    ),
    Call(
        "09:45", "phone",
        "我是福泽苑的，老伴儿瘫在床上，我自己也七十多了，听说社区有上门助浴和助餐的，这个怎么申请？",
        "陈大爷", place="福泽苑", address="福新街道福惠社区福泽苑",
    ),
    Call(
        "09:50", "wechat",
        "海韵家园南门那家烧烤店天天半夜还在喝酒划拳，音响开得老大，昨晚又闹到凌晨两点，投诉好几次了也没用。",
        "赵女士", place="海韵家园", address="黄海路街道海韵家园南门沿街", hint="噪声扰民",
    ),
    Call(
        "09:58", "phone",
        "汇福花园物业的王师傅昨天一直忙到晚上九点，帮我们把单元楼的水泵修好了，想表扬一下，"
        "能不能转告他们公司？",
        "邹先生", place="汇福花园", address="清洋街道汇福花园", hint="其他",
    ),
    Call(
        "10:02", "phone",
        "嵩山小区没有物业，楼道里贴满了小广告，垃圾点好几天没人清运，一开窗就臭得不行，社区能不能管一管？",
        "曲女士", place="嵩山小区", address="福莱山街道恒祥社区嵩山小区",
    ),
    Call(
        "10:06", "phone",
        "中海国际12号楼2单元电梯停在十几楼不动了，我母亲被困在里面，按电梯里的呼叫没人应，快派人来救人！",
        "李先生", place="中海国际", address="初家街道中海国际社区12号楼2单元", hint="电梯", locate="names",
        urgency="emergency",
    ),
    Call(
        "10:11", "app",
        "福城华府小区里有辆车停在消防通道上一个多月了，落满了灰，轮胎都瘪了，像是僵尸车，物业说没权挪。",
        "林女士", place="福城华府", address="清洋街道汇福街社区福城华府",
    ),
    Call(
        "10:15", "phone",
        "杨家庄新居6号楼一到晚上电压就不稳，灯一闪一闪的，电饭锅都烧坏一个了，打供电热线说记下了就没下文。",
        "隋女士", place="杨家庄新居", address="滨海路街道杨家庄新居6号楼",
    ),
    Call(
        "10:20", "phone",
        "兜余新居4号楼好几户从窗户往下飞线给电动车充电，电线就耷拉在一楼门口，一到晚上都是插线板，"
        "万一着火咋办？",
        "王先生", place="兜余新居", address="东厅街道兜余新居4号楼", hint="消防隐患", locate="codes",
    ),
    Call(
        "10:26", "web",
        "想咨询一下灵活就业人员的医保怎么在手机上缴费，今年的缴费截止到什么时候？",
        None,
    ),
    Call(
        "10:31", "phone",
        "芦洋家园小区主路坑坑洼洼，好几处塌下去一大块，电动车骑过去差点摔倒，物业说得等维修基金。",
        "高先生", place="芦洋家园", address="八角街道芦洋家园",
    ),
    Call(
        "10:35", "phone",
        "福翔家园2号楼电梯一动就咣当咣当响，上下晃得厉害，老人都不敢坐了，电梯里的年检标志也过期了。",
        "孙女士", place="福翔家园", address="东厅街道翔宇社区福翔家园2号楼", hint="电梯", urgency="urgent",
    ),
    Call(
        "10:38", "app",
        "东城国际小区里的充电桩有一半扫码充不上电，显示离线，物业说是运营公司的事，运营公司电话打不通。",
        "韩先生", place="东城国际", address="初家街道港城东社区东城国际",
    ),
    Call(
        "10:42", "wechat",
        "银海小区今早接的自来水发黄，放了十几分钟还是有点黄，还能不能喝？是不是二次供水的水箱该清洗了？",
        "李先生", place="银海小区", address="滨海路街道银海社区银海小区",
    ),
    Call(
        "10:47", "phone",
        "东厅新城3号楼我家暖气一直有咕噜咕噜的水声，还不太热，物业说得热力公司来放气，打了两天电话都没人来。",
        "张大爷", place="东厅新城", address="东厅街道东厅新城3号楼", hint="heating",
    ),
    Call(
        "10:52", "mini_program",
        "迎春大街观海路路口往北那一排路灯，早上八点多了还全亮着，好几天都这样，白白浪费电。",
        "王女士", address="莱山区迎春大街与观海路路口北侧", hint="路灯", locate="names", street="黄海路街道",
        community="观海社区",
    ),
    Call(
        "10:56", "phone",
        "丁家新城有户人家在楼下小院里养了三条大狗，一早上叫个不停，其中一条像是烈性犬，邻居都不敢从那走。",
        "杨先生", place="丁家新城", address="门楼街道丁家新城",
    ),
)
# fmt: on

# fmt: off
REPORTS: tuple[Report, ...] = (
    Report(
        "07:12", "W-0217", "河滨小区", "消防隐患",
        "河滨小区4号楼南侧小棚夹道内堆放木头、纸壳等易燃杂物，已入户劝导住户，老人同意今天上午清理，"
        "明天复查。",
        "清洋街道河滨社区河滨小区4号楼南侧", photos=1,
    ),
    Report(
        "07:22", "W-0903", "东泊小区", "road",
        "东泊小区3号楼东侧雨水井盖破损下陷，已放置锥桶提示，请物业和市政尽快更换。",
        "滨海路街道东泊社区东泊小区3号楼东侧", photos=1,
    ),
    Report(
        "07:35", "W-0217", "河滨小区", "绿化",
        "河滨小区7号楼前绿化带被住户开垦种菜约二十平方米，已上门做工作，住户表示收完白菜后恢复绿化，"
        "需社区跟进。",
        "清洋街道河滨社区河滨小区7号楼前",
    ),
    Report(
        "07:48", "W-0308", "松霞小区", "sanitation",
        "松霞小区12号楼西侧绿化带内堆积落叶和生活垃圾，已联合物业保洁清理完毕，共清运三车。",
        "清洋街道银河社区松霞小区12号楼西侧", handled_on_site=True, photos=2,
    ),
    Report(
        "08:10", "W-0405", "国奥天地", "illegal_parking",
        "国奥天地西侧消防通道被三辆私家车长期占用，已张贴挪车提示，车主电话打不通，请交警协助处置。",
        "古现街道国奥社区国奥天地西侧消防通道", photos=3,
    ),
    Report(
        "08:21", "W-0127", "鲁东小区", "养老服务",
        "走访鲁东小区独居老人王大娘，老人反映降压药快吃完了，腿脚不便出不了门，"
        "已联系社区卫生服务站送药上门。",
        "福新街道中青路社区鲁东小区2号楼", handled_on_site=True,
    ),
    Report(
        "08:24", "W-0112", "菁华公寓", "heating",
        "走访菁华公寓，3号楼、5号楼多户反映暖气不热，实测室温15至16度，疑似小区换热站循环泵故障，"
        "请热力公司排查。",
        "福莱山街道夹河社区菁华公寓", urgency="urgent",
    ),
    Report(
        "08:38", "W-0123", "中青小区", "外墙脱落",
        "中青小区临街3号门市房外墙装饰铝板松动，一角已翘起，下方是人行道，已拉警戒带，请督促产权人加固。",
        "福新街道中青路社区中青小区临街门市房", urgency="urgent", photos=2,
    ),
    Report(
        "08:47", "W-0614", "观海苑", "waste_sorting",
        "观海苑垃圾分类投放点厨余垃圾桶混投严重，桶内大量塑料袋，已现场指导分拣并张贴提示，"
        "建议物业安排桶边督导员。",
        "黄海路街道观海社区观海苑垃圾分类投放点", handled_on_site=True,
    ),
    Report(
        "09:08", "W-0402", "枫林苑", "dog_control",
        "枫林苑小区内发现流浪犬两只，有追赶行人的情况，已提醒居民注意避让，请相关部门联系收容。",
        "古现街道国奥社区枫林苑", urgency="urgent",
    ),
    Report(
        "09:16", "W-0701", "滨海明珠", "道路破损",
        "滨海明珠南门外人行道砖大面积松动翘起，长约十五米，已设置提示牌，请市政维修。",
        "滨海路街道滨海社区滨海明珠南门外", photos=2,
    ),
    Report(
        "09:27", "W-0533", "东厅小区", "power_supply",
        "东厅小区3号楼西侧电表箱旁电线绝缘皮老化脱落，接头处打火冒火花，已拉警戒线疏散围观居民，"
        "请供电公司立即处置。",
        "东厅街道东厅社区东厅小区3号楼西侧", urgency="emergency", photos=2,
    ),
    Report(
        "09:35", "W-0806", "初家小区", "治安",
        "初家小区北侧废弃车棚有外来人员夜间聚集，留下烟头酒瓶，存在治安和消防隐患，建议派出所加强夜间巡逻。",
        "初家街道初家社区初家小区北侧车棚",
    ),
    Report(
        "09:40", "W-0744", "金都花园", "noise",
        "金都花园居民反映小区东侧围墙外夜间常有大货车停靠卸货，凌晨噪音较大，已登记，需进一步核实商户。",
        "初家街道金都社区金都花园东侧围墙外",
    ),
    Report(
        "09:48", "W-0355", "汇福花园", "路灯",
        "汇福花园中心广场3盏庭院灯不亮，经检查为空开跳闸，已联系物业电工合闸恢复。",
        "清洋街道汇福街社区汇福花园中心广场", handled_on_site=True,
    ),
    Report(
        "09:56", "W-0217", "河滨小区", "drainage",
        "河滨小区4号楼南侧污水井满溢，污水漫至人行道约十米，已设置警示并通知物业，需市政排水疏通主管道。",
        "清洋街道河滨社区河滨小区4号楼南侧", urgency="urgent", photos=2,
    ),
    Report(
        "10:09", "W-0142", "长江小区", "物业服务",
        "长江小区为无物业老旧小区，单元门锁损坏5处，楼道窗户玻璃破损，居民自治小组暂无资金维修，"
        "建议社区协调解决。",
        "福莱山街道长江路社区长江小区",
    ),
    Report(
        "10:18", "W-0233", "古现一区", "ev_charging",
        "古现一区缺少电动车集中充电点，多户从窗户飞线充电，已劝导拆除两处，建议增设充电车棚。",
        "古现街道古现社区古现一区", photos=1,
    ),
    Report(
        "10:29", "W-0361", "崇文小区", "greenery",
        "崇文小区5号楼前一棵枯死的柳树有倾倒风险，已用警戒带围挡，请园林部门尽快伐除。",
        "福新街道崇文社区崇文小区5号楼前", urgency="urgent", photos=1,
    ),
    Report(
        "10:44", "W-0455", "蓝海公馆", "fire_hazard",
        "蓝海公馆地下一层消防通道堆放装修垃圾，堵塞安全出口，已通知物业今天清运，需复查。",
        "八角街道蓝海社区蓝海公馆地下一层", photos=2,
    ),
    Report(
        "10:50", "W-0526", "同心苑", "环境卫生",
        "同心苑南侧空地有人倾倒建筑垃圾约五方，未苫盖，扬尘较大，已拍照取证，请综合执法查处。",
        "东厅街道兜余社区同心苑南侧空地", photos=3,
    ),
    Report(
        "10:57", "W-0650", "双河小区", "neighbour_dispute",
        "双河小区3号楼两户因楼道停放电动车发生口角，已现场调解，双方同意把车停到车棚。",
        "黄海路街道双河社区双河小区3号楼", handled_on_site=True,
    ),
)
# fmt: on

PHONE_PREFIXES = ("133", "135", "137", "138", "139", "150", "152", "157", "177", "180", "186", "187", "188")


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def fake_phone(seed: str) -> str:
    n = _digest("phone:" + seed)
    return PHONE_PREFIXES[n % len(PHONE_PREFIXES)] + f"{(n // 97) % 10**8:08d}"


def event_time(at: str, seed: str) -> datetime:
    hour, minute = (int(part) for part in at.split(":"))
    return datetime(2026, 11, 21, hour, minute, _digest("second:" + seed) % 60, tzinfo=TZ)


def cloud_event(
    topic: str, key: str, source: str, type_: str, time: datetime, data: JsonObject
) -> JsonObject:
    return {
        "topic": topic,
        "key": key,
        "event": {
            "specversion": "1.0",
            "id": str(uuid.uuid5(EVENT_NAMESPACE, f"{topic}/{key}")),
            "source": source,
            "type": type_,
            "time": time.isoformat(),
            "subject": key,
            "datacontenttype": "application/json",
            "data": data,
        },
    }


class Gazetteer:
    def __init__(self, j: Jurisdiction) -> None:
        self.compounds = {k.name: (s, c, k) for s, c, k in j.compounds}
        self.communities = {(s.name, c.name): (s, c) for s, c in j.communities}
        self.grids = set(j.places_by_grid)
        self.j = j

    def location(self, call: Call) -> JsonObject:
        if call.place:
            street, community, compound = self.compounds[call.place]
            grid: str | None = compound.grid
        else:
            if call.street is None or call.community is None:
                raise ValueError(f"call at {call.at}: locate needs a compound or a street and community")
            street, community = self.communities[(call.street, call.community)]
            grid = None
        names = call.locate == "names"
        location: JsonObject = {
            "street": street.name if names else street.code,
            "community": community.name if names else community.code,
        }
        if grid:
            location["grid"] = grid
        return location

    def check_place(self, at: str, place: str, text: str, address: str | None) -> None:
        """The text or address names the compound, and what it says of a 物业 fits the compound."""
        _, _, compound = self.compounds[place]
        if not any(n in t for t in (text, address or "") for n in (compound.name, *compound.aliases)):
            raise ValueError(f"{at}: neither the text nor the address names {place}")
        without = any(w in text for w in ("没有物业", "无物业"))
        if without and compound.property_company:
            raise ValueError(f"{at}: the text says {place} has no 物业, the gazetteer gives it one")
        if "物业" in text and not without and not compound.property_company:
            raise ValueError(f"{at}: the text speaks of the 物业 of {place}, which has none")


def build_events(j: Jurisdiction) -> list[JsonObject]:
    gazetteer = Gazetteer(j)
    items: list[tuple[datetime, str, Call | Report]] = []
    for call in CALLS:
        items.append((event_time(call.at, call.content), CALLS_TOPIC, call))
    for report in REPORTS:
        items.append((event_time(report.at, report.description), REPORTS_TOPIC, report))
    items.sort(key=lambda item: item[0])

    events: list[JsonObject] = []
    call_no, report_no = 186, 4  # the day's counters before 07:00 (night calls, not in the sample)
    for time, topic, item in items:
        if isinstance(item, Call):
            call_no += 1 + _digest("gap:" + item.content) % 7  # calls answered elsewhere leave gaps
            key = f"12345-{DAY}-{call_no:06d}"
            source, type_, data = HOTLINE_SOURCE, "hotline.call.received", call_data(gazetteer, key, item)
        else:
            report_no += 1 + _digest("gap:" + item.description) % 3
            key = f"GR-{DAY}-{report_no:04d}"
            source, type_, data = GRIDAPP_SOURCE, "grid.issue.reported", report_data(gazetteer, key, item)
        events.append(cloud_event(topic, key, source, type_, time, data))
    return events


def call_data(gazetteer: Gazetteer, call_id: str, call: Call) -> JsonObject:
    if not 20 <= len(call.content) <= 120:
        raise ValueError(f"call at {call.at}: content of {len(call.content)} characters")
    if call.place:
        gazetteer.check_place(call.at, call.place, call.content, call.address)
    if call.hint and gazetteer.j.find_category(call.hint) is None:
        raise ValueError(f"call at {call.at}: unknown category hint {call.hint!r}")
    data: JsonObject = {"call_id": call_id, "channel": call.channel, "content": call.content}
    if call.caller:
        data["caller"] = {"name": call.caller, "phone": fake_phone(call_id)}
    if call.hint:
        data["category_hint"] = call.hint
    if call.address:
        data["address"] = call.address
    if call.locate:
        data["location"] = gazetteer.location(call)
    data["urgency"] = call.urgency
    return data


def report_data(gazetteer: Gazetteer, report_id: str, report: Report) -> JsonObject:
    if not 20 <= len(report.description) <= 120:
        raise ValueError(f"report at {report.at}: description of {len(report.description)} characters")
    gazetteer.check_place(report.at, report.place, report.description, report.address)
    if gazetteer.j.find_category(report.category) is None:
        raise ValueError(f"report at {report.at}: unknown category {report.category!r}")
    _, _, compound = gazetteer.compounds[report.place]
    data: JsonObject = {
        "report_id": report_id,
        "grid_id": compound.grid,
        "worker_id": report.worker,
        "category": report.category,
        "description": report.description,
        "address": report.address,
        "urgency": report.urgency,
        "handled_on_site": report.handled_on_site,
    }
    if report.photos:
        data["photos"] = [f"{PHOTO_BASE}/{report_id}-{n}.jpg" for n in range(1, report.photos + 1)]
    if data["grid_id"] not in gazetteer.grids:
        raise ValueError(f"report at {report.at}: unknown grid {data['grid_id']!r}")
    return data


# --------------------------------------------------------------------------------------------------


def main() -> None:
    raw = build_jurisdiction()
    JURISDICTION_PATH.parent.mkdir(parents=True, exist_ok=True)
    JURISDICTION_PATH.write_text(json.dumps(raw, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    jurisdiction = load_jurisdiction(JURISDICTION_PATH)
    check_jurisdiction(jurisdiction)

    events = build_events(jurisdiction)
    LOG_PATH.parent.mkdir(parents=True, exist_ok=True)
    LOG_PATH.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")

    streets = [s for d in jurisdiction.districts for s in d.streets]
    by_topic: dict[str, int] = {}
    for e in events:
        by_topic[e["topic"]] = by_topic.get(e["topic"], 0) + 1
    print(
        f"{JURISDICTION_PATH.relative_to(ROOT)}: {len(jurisdiction.districts)} districts, "
        f"{len(streets)} streets, {len(jurisdiction.communities)} communities, "
        f"{len(jurisdiction.places_by_grid)} grids, {len(jurisdiction.compounds)} compounds, "
        f"{len(jurisdiction.departments)} departments, {len(jurisdiction.categories)} categories, "
        f"{len(jurisdiction.duties)} duties"
    )
    print(
        f"{LOG_PATH.relative_to(ROOT)}: {len(events)} events, "
        + ", ".join(f"{topic} {count}" for topic, count in sorted(by_topic.items()))
    )


if __name__ == "__main__":
    main()
