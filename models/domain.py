"""Enums shared by the whole domain: places, roles, stages, decisions."""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    SCHOOL = "school"  # a high school submitting its students (new-student aid)
    VILLAGE = "village"
    TOWNSHIP = "township"
    COUNTY = "county"
    PROVINCE = "province"  # the provincial Youth League confirms the freshman grant's list
    UNIVERSITY = "university"  # a university, by its 5-digit national code (the student loan)


class Role(StrEnum):
    VILLAGE_COMMITTEE = "village_committee"  # 村委会
    TOWNSHIP_POVERTY_OFFICE = "township_poverty_office"  # 乡镇扶贫部门
    COUNTY_EDUCATION_BUREAU = "county_education_bureau"  # 县教育局
    COUNTY_LEADING_GROUP = "county_leading_group"  # 县扶贫开发领导小组
    COUNTY_FINANCE = "county_finance"  # 县财政局
    COUNTY_POVERTY_OFFICE = "county_poverty_office"  # 县扶贫办
    HIGH_SCHOOL = "high_school"  # 高中 (submits its graduates' applications)
    CIVIL_AFFAIRS_BUREAU = "civil_affairs_bureau"  # 县民政局 (checks rosters against its rolls)
    COUNTY_YOUTH_LEAGUE = "county_youth_league"  # 团县委 (leads the freshman grant)
    PROVINCIAL_YOUTH_LEAGUE = "provincial_youth_league"  # 团省委 (confirms the final list)
    UNIVERSITY = "university"  # 高校 (confirms a student loan's receipt)
    LOAN_BANK = "loan_bank"  # 经办银行 (the student loan's bank: contracts, disbursement)
    CENTRAL_SCHOOL = "central_school"  # 乡镇中心学校 (opens dropout and left-behind cases)
    COLLEGE = "college"  # 学院学生工作办公室 and its leading group (academic help)
    DEPARTMENT_LIAISON = "department_liaison"  # 联络员 of a department's pairing cadres
    HELPER = "helper"  # a person who owes a case contact: cadre, teacher, peer (their own key)
    APPLICANT = "applicant"
    PUBLIC = "public"  # anyone may object to a notice
    SYSTEM = "system"  # aidflow itself (timers, automatic postings)


ROLE_LEVEL: dict[Role, Level] = {
    Role.VILLAGE_COMMITTEE: Level.VILLAGE,
    Role.TOWNSHIP_POVERTY_OFFICE: Level.TOWNSHIP,
    Role.COUNTY_EDUCATION_BUREAU: Level.COUNTY,
    Role.COUNTY_LEADING_GROUP: Level.COUNTY,
    Role.COUNTY_FINANCE: Level.COUNTY,
    Role.COUNTY_POVERTY_OFFICE: Level.COUNTY,
    Role.HIGH_SCHOOL: Level.SCHOOL,
    Role.CIVIL_AFFAIRS_BUREAU: Level.COUNTY,
    Role.COUNTY_YOUTH_LEAGUE: Level.COUNTY,
    Role.PROVINCIAL_YOUTH_LEAGUE: Level.PROVINCE,
    Role.UNIVERSITY: Level.UNIVERSITY,
    Role.LOAN_BANK: Level.COUNTY,
    Role.CENTRAL_SCHOOL: Level.TOWNSHIP,
}


def level_of(role: Role) -> Level:
    """The level at which an office holds its place (aidflow's own roles: the county)."""
    return ROLE_LEVEL.get(role, Level.COUNTY)


ROLE_NAME_ZH: dict[Role, str] = {
    Role.VILLAGE_COMMITTEE: "村委会",
    Role.TOWNSHIP_POVERTY_OFFICE: "乡镇扶贫部门",
    Role.COUNTY_EDUCATION_BUREAU: "县教育局",
    Role.COUNTY_LEADING_GROUP: "县扶贫开发领导小组",
    Role.COUNTY_FINANCE: "县财政局",
    Role.COUNTY_POVERTY_OFFICE: "县扶贫办",
    Role.HIGH_SCHOOL: "高中",
    Role.CIVIL_AFFAIRS_BUREAU: "县民政局",
    Role.COUNTY_YOUTH_LEAGUE: "团县委",
    Role.PROVINCIAL_YOUTH_LEAGUE: "团省委",
    Role.UNIVERSITY: "高校",
    Role.LOAN_BANK: "经办银行",
    Role.CENTRAL_SCHOOL: "中心学校",
    Role.COLLEGE: "学院学工办",
    Role.DEPARTMENT_LIAISON: "部门联络员",
    Role.HELPER: "帮扶责任人",
    Role.APPLICANT: "申请人",
    Role.PUBLIC: "公众",
    Role.SYSTEM: "系统",
}


class EducationLevel(StrEnum):
    UNDERGRADUATE_FULL_TIME = "undergraduate_full_time"  # 普通高等教育全日制本科
    JUNIOR_COLLEGE_FULL_TIME = "junior_college_full_time"  # 专科
    SECONDARY_VOCATIONAL = "secondary_vocational"  # 中职
    HIGHER_VOCATIONAL = "higher_vocational"  # 高职
    POSTGRADUATE = "postgraduate"
    PART_TIME = "part_time"


EDUCATION_LEVEL_ZH: dict[EducationLevel, str] = {
    EducationLevel.UNDERGRADUATE_FULL_TIME: "全日制本科",
    EducationLevel.JUNIOR_COLLEGE_FULL_TIME: "专科",
    EducationLevel.SECONDARY_VOCATIONAL: "中职",
    EducationLevel.HIGHER_VOCATIONAL: "高职",
    EducationLevel.POSTGRADUATE: "研究生",
    EducationLevel.PART_TIME: "非全日制",
}


class HouseholdCategory(StrEnum):
    REGISTERED_POOR = "registered_poor"  # 建档立卡贫困户
    MINIMUM_SUBSISTENCE = "minimum_subsistence"  # 低保户
    EXTREME_POVERTY = "extreme_poverty"  # 特困供养
    ORPHAN = "orphan"


class ReliefCategory(StrEnum):
    """The civil-affairs categories under which a freshman is eligible (PROCESS.md §4.3)."""

    URBAN_SUBSISTENCE_FULL = "urban_subsistence_full"  # 城市低保全额保障
    RURAL_SUBSISTENCE_CLASS_1 = "rural_subsistence_class_1"  # 农村低保一类
    RURAL_SUBSISTENCE_CLASS_2 = "rural_subsistence_class_2"  # 农村低保二类
    SINGLE_PERSON_HOUSEHOLD = "single_person_household"  # "单人户"施保对象
    EXTREME_POVERTY = "extreme_poverty"  # 特困人员
    ORPHAN = "orphan"  # 孤儿
    WITHOUT_DE_FACTO_CARER = "without_de_facto_carer"  # 事实无人抚养儿童


RELIEF_CATEGORY_ZH: dict[ReliefCategory, str] = {
    ReliefCategory.URBAN_SUBSISTENCE_FULL: "城市低保全额保障",
    ReliefCategory.RURAL_SUBSISTENCE_CLASS_1: "农村低保一类",
    ReliefCategory.RURAL_SUBSISTENCE_CLASS_2: "农村低保二类",
    ReliefCategory.SINGLE_PERSON_HOUSEHOLD: "单人户施保对象",
    ReliefCategory.EXTREME_POVERTY: "特困人员",
    ReliefCategory.ORPHAN: "孤儿",
    ReliefCategory.WITHOUT_DE_FACTO_CARER: "事实无人抚养儿童",
}


class DocumentKind(StrEnum):
    APPLICATION_FORM = "application_form"  # 申请表 (three copies)
    HOUSEHOLD_REGISTER_HEAD = "household_register_head"  # 户口簿 of the household head
    HOUSEHOLD_REGISTER_STUDENT = "household_register_student"  # 户口簿 of the student
    IDENTITY_CARD = "identity_card"  # 身份证
    STUDENT_CARD = "student_card"  # 学生证
    ADMISSION_LETTER = "admission_letter"  # 录取通知书 (freshmen)
    ELECTRONIC_ENROLMENT = "electronic_enrolment"  # 电子学籍 (freshmen)
    SUBSIDY_CARD_PASSBOOK = "subsidy_card_passbook"  # 一卡通 passbook
    # The student loan (PROCESS.md §4.4): the co-borrower's papers, and the family's
    # hardship shown by the township's certificate or, for a registered-poor student,
    # the poverty handbook; a renewal brings its statement instead.
    CO_BORROWER_IDENTITY_CARD = "co_borrower_identity_card"  # 共同借款人身份证
    CO_BORROWER_HOUSEHOLD_REGISTER = "co_borrower_household_register"  # 共同借款人户口簿
    HARDSHIP_CERTIFICATE = "hardship_certificate"  # 乡镇家庭经济困难证明
    POVERTY_HANDBOOK = "poverty_handbook"  # 扶贫手册
    RENEWAL_STATEMENT = "renewal_statement"  # 续贷声明


DOCUMENT_NAME_ZH: dict[DocumentKind, str] = {
    DocumentKind.APPLICATION_FORM: "申请表",
    DocumentKind.HOUSEHOLD_REGISTER_HEAD: "户主户口簿",
    DocumentKind.HOUSEHOLD_REGISTER_STUDENT: "学生户口簿",
    DocumentKind.IDENTITY_CARD: "身份证",
    DocumentKind.STUDENT_CARD: "学生证",
    DocumentKind.ADMISSION_LETTER: "录取通知书",
    DocumentKind.ELECTRONIC_ENROLMENT: "电子学籍",
    DocumentKind.SUBSIDY_CARD_PASSBOOK: "一卡通存折",
    DocumentKind.CO_BORROWER_IDENTITY_CARD: "共同借款人身份证",
    DocumentKind.CO_BORROWER_HOUSEHOLD_REGISTER: "共同借款人户口簿",
    DocumentKind.HARDSHIP_CERTIFICATE: "家庭经济困难证明",
    DocumentKind.POVERTY_HANDBOOK: "扶贫手册",
    DocumentKind.RENEWAL_STATEMENT: "续贷声明",
}


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    RETURN_FOR_CORRECTION = "return"


class ObjectionOutcome(StrEnum):
    UPHELD = "upheld"
    DISMISSED = "dismissed"


class Stage(StrEnum):
    """Where an application is. Review and notice stages are named by the programme."""

    VILLAGE_REVIEW = "village_review"
    VILLAGE_NOTICE = "village_notice"
    TOWNSHIP_REVIEW = "township_review"
    TOWNSHIP_NOTICE = "township_notice"
    COUNTY_APPROVAL = "county_approval"
    COUNTY_REVIEW = "county_review"
    COUNTY_NOTICE = "county_notice"
    AWAITING_FUNDS = "awaiting_funds"
    AWAITING_PAYMENT = "awaiting_payment"
    AWAITING_ACCOUNT_CORRECTION = "awaiting_account_correction"
    AWAITING_RECEIPT = "awaiting_receipt"
    PAID = "paid"
    RECEIVED = "received"  # signed for in person (签领)
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    LENT = "lent"  # the student loan paid out by its bank (放贷)
    CANCELLED = "cancelled"  # the grant cancelled: a report or objection proved true (Rain and Dew)


TERMINAL_STAGES = frozenset(
    {Stage.PAID, Stage.RECEIVED, Stage.LENT, Stage.REJECTED, Stage.WITHDRAWN, Stage.CANCELLED}
)

STAGE_NAME_ZH: dict[str, str] = {
    Stage.VILLAGE_REVIEW: "村委会初审",
    Stage.VILLAGE_NOTICE: "村级公示",
    Stage.TOWNSHIP_REVIEW: "乡镇复核",
    Stage.TOWNSHIP_NOTICE: "乡镇公示",
    Stage.COUNTY_APPROVAL: "县教育局审批",
    Stage.COUNTY_REVIEW: "县级审核",
    Stage.COUNTY_NOTICE: "县级公示",
    Stage.AWAITING_FUNDS: "等待资金到位",
    Stage.AWAITING_PAYMENT: "等待打卡发放",
    Stage.AWAITING_ACCOUNT_CORRECTION: "等待更正账户",
    Stage.AWAITING_RECEIPT: "等待本人签领",
    Stage.PAID: "已发放",
    Stage.RECEIVED: "已签领",
    Stage.LENT: "已放贷",
    Stage.REJECTED: "未通过",
    Stage.WITHDRAWN: "已撤回",
    Stage.CANCELLED: "已取消资助",
}

STAGE_NAME_EN: dict[str, str] = {
    Stage.VILLAGE_REVIEW: "village first review",
    Stage.VILLAGE_NOTICE: "village public notice",
    Stage.TOWNSHIP_REVIEW: "township review",
    Stage.TOWNSHIP_NOTICE: "township public notice",
    Stage.COUNTY_APPROVAL: "county approval",
    Stage.COUNTY_REVIEW: "county review",
    Stage.COUNTY_NOTICE: "county public notice",
    Stage.AWAITING_FUNDS: "awaiting funds",
    Stage.AWAITING_PAYMENT: "awaiting card payout",
    Stage.AWAITING_ACCOUNT_CORRECTION: "awaiting account correction",
    Stage.AWAITING_RECEIPT: "awaiting the signed receipt",
    Stage.PAID: "paid",
    Stage.RECEIVED: "received (signed for)",
    Stage.LENT: "lent (paid by the bank)",
    Stage.REJECTED: "rejected",
    Stage.WITHDRAWN: "withdrawn",
    Stage.CANCELLED: "cancelled (fraud proven)",
}
