"""Real words one typo away from the intent vocabulary, so typo correction leaves them alone.

Generated from the Romanian (hunspell-ro, expanded with ``unmunch``) and American
English (wamerican) word lists, folded: every word of five or more letters within one
edit of a ``lexicon.VOCABULARY`` word, plus a few domain words those lists lack.
Regenerate it when the vocabulary changes.
"""

_WORDS = """
    abata abate abati acatare acatarea acatari acatat acatata acatate acatati acati accent
    accente acceptai acceptant acceptanta acceptante acceptanti acceptara acceptareo
    acceptarii acceptase acceptasi acceptatei acceptatia acceptatie acceptatii acceptatio
    acceptato acceptatu acceptau accepted acceptia acceptie acceptii acceptio acceptoare
    acceptoarea acceptori accepts acceptu accord acorda acordari acordarile acordarilor
    acorde acordori acordorilor acordu acordule acorn acort acortul acortului acris activ
    activai activandu activant activanta activante activanti activara activareo activase
    activasi activated activatei activates activatii activato activatu activau active
    activei activele actives activi activo activu actualitate actualitati actualizabile
    actualizai actualizandu actualizara actualizareo actualizase actualizasi actualizatei
    actualizatii actualizatilor actualizato actualizatu actualizau actualize actualized
    actualizes acuta acute acuti adage adaog adaoga adaogam adaogare adaogat adaogati adaoge
    adaogi adaugai adaugara adaugareo adaugarii adaugase adaugasi adaugatei adaugatii
    adaugato adaugatu adaugau adaugea adaugeam adaugeati adaugii adaugim adaugire adaugirea
    adaugiri adaugit adaugita adaugite adaugiti adaus adpresa adprese adpresei adpresele
    adpreselor adresai adresam adresat adresau adresez adreseze adresezi adreso adula adulam
    aduland adulare adularea adulari adularii adularile adularilor adulat adulata adulate
    adulati aduleaza adulez aduleze adulezi aerata aerate aerati afisele afiselor afluxul
    afluxului afluxuri afluxurile afluxurilor afternoons agata agatam agatare agatarea
    agatari agatat agatata agatate agatati agate agati agendas agende agendo agenta agentei
    agentu agentule agestul aghentul agnetul agresa ailed ailing alata alate alati albie
    albiei albier albieri albierii albierilor albii albiii albiile albiilor albime albimea
    albimi albimii albimile albimilor albine albinea albini albinii albiori albiorii
    albiorilor albira albireo albise albisi albite albiti albitii albitilor albori alborii
    alburea alburi alburii aliaza alocuri alunar alunea amati amenda amentul amidaza amilaza
    amine anala anale analytic angulare angulari angularii angularilor anual anuala anuare
    anuitate anuitati anulabile anulai anulandu anular anulara anulareo anularu anularule
    anulase anulasi anulatei anulatia anulatie anulatii anulatilor anulatio anulativ anulato
    anulatu anulau anule anuntai anuntara anuntareo anuntarii anuntase anuntasi anuntatei
    anuntatii anuntato anuntatu anuntau anuntu anunturi anura anuta apata aport aportul
    aportului aporturi aporturile aporturilor aprig aprils aprilu aprioritate apunta
    apuntare apuntarea apuntari apuntat apuntata apuntate apuntati araba arabe arabi araci
    arafat arama aramari arami arapi arara araram ararat ararati arare arari arase arasi
    aratai aratara aratareo aratarii aratase aratasi aratatei aratatii aratato aratatu
    aratau aratei aratii arato aratoare aratoarea aratori aratu araturi arcat arcata arcate
    arcati arenda arendei areta aretare aretarea aretari aretat aretata aretate aretati
    argata argate argati armata armate armati armatoare armatoarele artari artie arvata
    arvate arvati asati aseara asses assesses assets astazia astazie astazii astazio asterii
    atata atatam atatare atatarea atatari atatat atatata atatate atatati atate atati atele
    atelor atentul ating augusta auguste augusti augusto augusts augustu automatizara
    automatizareo automatizari automatizase automatizate avata avatare avate avati axata
    axate axati bailed bailing bails balled banal banale barata barate barati barca barcari
    barcarii baseasca basesc baseste basesti basim basit basiti bated batele batelor bates
    bating bauta baute bauti beads biata biber biberi bifai bifara bifareo bifarii bifase
    bifasi bifatei bifatii bifato bifatu bifau bifere biferi bifore bigam billing binare
    binari birari birthdays bisam bisare bisarea bisari bisat bisata bisate bisati bizam
    bizare bizari blansa blansam blansand blansare blansarea blansari blansarii blansarile
    blansat blansati blanseaza blansez blanseze blansezi blocul blocuri blocurile blots
    bocul bocuri bocurile boobed boobing boobs booed booing bookend booker boomed booming
    booms boons boors booted booting boots boozed boozing boroana bosar bosarul bosarului
    botam botand botat botati boteaza botei botele botelor botez boteze botezi brace braced
    bracts brakes brant brata bratam bratare bratarea bratari bratat bratati brate brates
    brati braves breakdowns brooked brooking brooks brown bulat bulata bulate bulati bunea
    cabal cabale cabled cacti cafti caicel caine caita caite caiti caiuti calcific calcifica
    calcificam calcificare calcificarea calcificari calcificat calcificata calcificate
    calcificati calcifice calcifici calendare calendars calendaru calendarule califi
    calificai calificara calificareo calificarii calificase calificasi calificatei
    calificatia calificatie calificatii calificatio calificativ calificato calificatu
    calificau califii calked caller calmed calti caluti calvarii calvat calvata calvate
    calvati calved canaf canalie canals canalu canape canar canat canate cancelation
    cancellations cancellingu cancer cancers candel candle canele cange canta cantal cantale
    cantam cantare cantarea cantari cantat cantata cantate cantati cante canti canula canule
    canuta canute capta captam captare captarea captari captat captata captate captati
    caputa caputam caputare caputarea caputari caputat caputati capute carata carate carati
    carca carcel carnal carnale carta cartam cartare cartarea cartari cartat cartata cartate
    cartati carte cartea carti caruta carute casale casita casta caste casti casuta casute
    casuti catam catare catarea catari catat catata catate catati catele catelor catete
    catetele cativa catui cauce caudat caudate cauei cauia caula caule cause cautai cautara
    cautareo cautarii cautase cautasi cautatei cautatii cautato cautatu cautau cauter
    cautere cauza cauzam cauzare cauzarea cauzari cauzat cauzata cauzate cauzati cauze caval
    cavale cazuta cazute cazuti ceara cerberi cereai cerere cererii cereti cerificare
    cerificarea cerificari cerneri certi certii ceruri ceteri chance chanced chancel
    chancels chances chancing chang chanted chanting charge charged charges charging checker
    checkups checu cheek cheeked cheeking cheeks chick chicks chock chocked chocking chocks
    chuck chucked chucking chucks chute ciuta ciute ciuti clanal clanale clanged clanging
    clarific clarifica clarificam clarificare clarificarea clarificari clarificat
    clarificata clarificate clarificati clarifice clarifici clasificai clasificara
    clasificareo clasificarii clasificase clasificasi clasificatei clasificatia clasificatie
    clasificatii clasificatio clasificato clasificatu clasificau cleanings cleansing
    clearing cleaving client clienta cliente clientei clientii cliento clients clientu
    clinti clots clotul clotului cloturi cloturile cloturilor clown cocul cocuri cocurile
    codific codifica codificam codificare codificarea codificari codificat codificata
    codificate codificati codifice codifici colecta colectam colectand colectare colectarea
    colectari colectarii colectarile colectat colectata colectate colectati colecteaza
    colectez colecteze colectezi coloana compete competed competes competing complecta
    complectam complectand complectare complectarea complectari complectarii complectarile
    complectat complectata complectate complectati complecte complecteaza complected
    complectez complecteze complectezi complet completabile completai completandu completara
    completareo completas completase completasi completasii completatei completatii
    completato completatu completau completei completele completer completest completi
    completo completu completuri completurile complexa complexam complexand complexare
    complexarea complexari complexarii complexarile complexat complexata complexate
    complexati complexe complexeaza complexes complexez complexeze complexezi complota
    complotam complotand complotare complotarea complotari complotarii complotarile
    complotat complotata complotate complotati comploteaza complotez comploteze complotezi
    conecta conectam conectand conectare conectarea conectari conectarii conectarile
    conectat conectata conectate conectati conecteaza conectez conecteze conectezi confiam
    confiem confirmai confirmandu confirmara confirmareo confirmase confirmasi confirmatei
    confirmatia confirmatie confirmatii confirmatilor confirmatio confirmativ confirmato
    confirmatu confirmau confirme confirmi conform conforma conformam conformand conformare
    conformarea conformari conformarii conformarile conformarilor conformat conformata
    conformate conformati conformeaza conformed conformez conformeze conformezi conforming
    conforms consemn consemnabile consemnai consemnandu consemnara consemnareo consemnase
    consemnasi consemnatei consemnatia consemnatie consemnatii consemnatio consemnativ
    consemnato consemnatu consemnau consemne consemnele consemnu consens consimtamantu
    consimtamantule consultantii consultarii consultata consultate consultatei consultati
    consultatiei consultatio consultations consultativ consultativa consultative
    consultativi contactai contactara contactareo contactarii contactase contactasi
    contactatei contactatii contactato contactatu contactau contacted contactez contactoare
    contacts contactu contant contanta contante contanti contat contata contate contati
    content contented contenting contents contract contracta contractam contractare
    contractarea contractari contractat contractata contractate contractati contracte contro
    controla controlari controlarile controlarilor controlori controlorilor controls
    controlu controlule convent convents conversa conversai converse conversei conversi
    conversiei conversii conversio conversions cooked cooking cooks cordul cordului corduri
    cordurile cordurilor corect corectabile corectai corectandu corectara corectareo
    corectase corectasi corectatei corectatii corectato corectatu corectau corectazii
    corecte corectei corectele corecti corectia corecto corectoare corectoarea corectori
    corectorii corectu corecturi corecturii corecturile cored cores corhana coring cormana
    cornesti corning cornita coroane coroano corobana corona correcter cosar cosarul
    cosarului cosemna cosemnam cosemnand cosemnare cosemnarea cosemnari cosemnarii
    cosemnarile cosemnat cosemnati cosemneaza cosemnez cosemneze cosemnezi cotam cotand
    cotare cotarea cotari cotarii cotarile cotat cotata cotate cotati coteaza cotei cotele
    cotelor cotez coteze cotezi cratare crate crated crates crating creeri croon crowd
    crowns crows cruta crutam crutare crutarea crutari crutat crutata crutate crutati crute
    cruti culata culate culled cumele cunning curatai curatara curatareo curatase curatasi
    curatate curatati curatatii curatatilor curatire curatirea curatiri curatirii curatirile
    curatirilor curatoare curatoarea curatori curatorii curatorilor curaturi curaturii
    curaturile curaturilor curtare curtarea curtari curtarii curtarile curtarilor cutam
    cutare cutarea cutari cutat cutata cutate cutati dacele dacelor dadele dadelor dalele
    dalelor damele damelor danele danelor dansa dansam dansand dansare dansarea dansari
    dansarii dansarile dansat dansata dansate dansati danseaza dansez danseze dansezi
    dantele darati darele darelor dated dates dateze datilor dating datule decalii decaline
    decembers declame declansai declansandu declansant declansanta declansante declansanti
    declansara declansareo declansase declansasi declansatei declansatii declansato
    declansatu declansau declansoare declasa declasam declasand declasare declasarea
    declasari declasarii declasarile declasat declasata declasate declasati declaseaza
    declasez declaseze declasezi declin declina declini declinu declive decomandare
    decomandat dedalii dedita defuse defused defuses defusing degete delege delele deleter
    delte delute demna demne demni dentalii denunt denunta denuntam denuntare denuntarea
    denuntari denuntat denuntata denuntate denuntati denunte denunti deplansa deplete
    depleted depletes depleting depline deport deports deprograma deprogramam deprogramand
    deprogramare deprogramarea deprogramari deprogramarii deprogramarile deprogramarilor
    deprogramat deprogramati deprogrameaza deprogramez deprogrameze deprogramezi derails
    deschid deschida deschidea deschideai deschideati deschidem deschideri deschise desire
    desper despere detail detaila detains detalia detaliai detalie detaliu detaliui
    detaliule detartra detartrai detartraje detartraju detartrajule detartram detartrat
    detartrau devalua devaluam devaluand devaluare devaluarea devaluari devaluarii
    devaluarile devaluarilor devaluat devaluati devalueaza devaluez devalueze devaluezi
    devitalizara devitalizarea devitalizareo devitalizari devitalizase devitalizate diatele
    diatelor dimineato diminuata disponibilei disponibilii disponibilitateo disponibilitati
    disponibilizate disponibilu docar docarul docarului docul docuri docurile dogar dogarul
    dogarului doiar doiarul doiarului dolar dolarul dolarului dominica dornesti dosare
    dosaru dosarule dotalii dotam dotand dotare dotarea dotari dotarii dotarile dotat dotata
    dotate dotati doteaza dotei dotele dotelor dotez doteze dotezi dresa drese dresei
    dresele dreselor drown dulie dumber dumele dumineca duminical duminici duminico dunning
    eating edicta edictam edictand edictare edictarea edictari edictarii edictarile edictat
    edictati edicteaza edictez edicteze edictezi editabile editai editandu editara editareo
    editase editasi editatei editatii editato editatu editau edite edited editei editele
    edith editi editia editoare editoarea editori editorii edits editu edituri editurii
    editurile efluxul efluxului efluxuri efluxurile efluxurilor elansa elansam elansand
    elansare elansarea elansari elansarii elansarile elansat elansata elansate elansati
    elanseaza elansez elanseze elansezi elibera elita elitare elitari elitarii emaila emails
    emailu emailule emita emitand enquiries enron enunt enunta enuntam enuntare enuntarea
    enuntari enuntat enuntata enuntate enuntati enunte enunti erata erate erati ermine errol
    etichetai etichetam etichetat etichetau etichetez eticheteze etichetezi eticheto evacua
    evacuam evacuand evacuare evacuarea evacuari evacuarii evacuarile evacuarilor evacuat
    evacuata evacuate evacuati evacueaza evacuez evacueze evacuezi evaluabile evaluai
    evaluandu evaluara evaluareo evaluase evaluasi evaluated evaluatei evaluates evaluatii
    evaluatilor evaluativ evaluato evaluatu evaluau evenings evita evitam evitand evitare
    evitarea evitari evitarii evitarile evitat evitata evitate evitati evoke evoked evokes
    evoking evolua evoluam evoluand evoluare evoluarea evoluari evoluarii evoluarile
    evoluarilor evoluat evoluata evoluate evoluati evolueaza evoluez evolueze evoluezi
    extracte extractiei extractii extractio extractions extractiv extractiva extractive
    ezita ezitam ezitand ezitare ezitarea ezitari ezitarii ezitarile ezitat ezitata ezitate
    ezitati fabled fagete fagetele fagul fagului faguri fagurilor failings faine fairs
    falling falls fameni fanal fanale fancel fanete fanetele fasei fasele faselor fatate
    fatatele fated fatele fatelor fates fateta fatetei fatetez fateteze fateto fating fatute
    fatutele februaries felling ferta ferte fertei fertele fertelor fesei fesele feselor
    fetalii fiber fidele filed filei filele filelor filing fillings filming finali finalii
    finalitate finalitati finalizai finalizara finalizareo finalizarii finalizase finalizasi
    finalizatei finalizatii finalizato finalizatu finalizau finalized finalizes finalizez
    finei finele finelor finis finisa finise finises finisher finishes finisi finisu finitia
    finnish firele firelor fisai fisem fiser fisesi fiset fisete fiseti fisez fiseze fisezi
    fisti fisule fitei fitele fitelor fixei fixele fixelor flailed flailing flails flansa
    flaxul flaxului flexuri flexurile flexurilor flocul fluturi fluturilor fluxu fluxule
    focul focuri focurile foiled foiling foils formula formulae formulai formulam formulara
    formulare formulari formularu formularule formulas formulat formulatul formulau fosei
    fosele foselor fotei fotele fotelor frant frata frate frati fridays frown fulare fularea
    fulari fularii fularile fuleaza fulie fulling fumarul funar funie fusei fusele fuselor
    fuxul fuxului gaceasca gacesc gaceste gacesti gacim gacire gacirea gacit gacita gaciti
    gaesti gafita gagesti gagul gagului gaguri gagurile gagurilor gaiesti gaita galesti
    galita galled ganesti garant garata garate garati gaseati gases gasii gasira gasireo
    gasiri gasise gasisi gasite gasitei gasitii gasito gasitu gastesti gasti gastii gateasca
    gated gates gatesc gateste gatesti gatim gating gatire gatirea gatit gatita gatiti
    gerant germina germinare germinarea germinari germinat germinata germinate germinati
    giant giants ginerea gineri girant glant gleaning gmail gooks gornesti graces graft
    grafted grafting grafts grait grana granat grand grands grane granit grano grantu
    gratare grate grated grates grating graunt grown grunt grunted grunting grunts gulie
    gumele gunning hailed hailing hails haine halva hanged hanging hansa hansari hansarii
    harati harca harcati hared hares haring hartie hated hates hating haunch heads hermina
    herminat herminata herminate herminati hermine hooked hooking hooks hotare hotari hotei
    hotele hotelor humele ierti igienizai igienizara igienizareo igienizase igienizasi
    igienizate igienizati igienizatii igienizatilor ignitia ilotul ilotului implanta
    implantari implantarile implantarilor implante implanti implantu implantule incape
    incapeti incep incepea incepeai incepeati incepem inceperi incepi incepu inceputi incete
    infirmatii infomatii informalii informarii informatei informati informatia informatic
    informatici informatie informatiei informatio informativ informativi inita initiai
    initial initiala initiale initiali initialii initiara initiase initiasi initiated
    initiatei initiates initiatic initiatii initiato initiatu initiau initiaza initie
    initiem initiere initierea initieri initierii initierile initiind initio inotam inotand
    inotare inotarea inotari inotarii inotarile inotat inotata inotate inotati inquires
    inregistrabile inregistrai inregistrandu inregistrara inregistrareo inregistrase
    inregistrasi inregistratei inregistratii inregistratilor inregistrato inregistratu
    inregistrau intepe internal intervale intervals intervalu intervalule iotei iotele
    iotelor iphone irata irate irati iulia iuliei iulio iuliu iunia iuniei iunio iurie
    jailed jailing jails jarca jartea jocul jocuri jocurile jotei jotele jotelor journeys
    julie jumele junie karate killing kmail kooks lacul lacuri lacurile lanar lanari lanarii
    lancezi landa landsat langa lanka lansai lansaj lansandu lansara lansareo lansase
    lansasi lansatei lansatii lansato lansatu lansau lanseta lansete larch lasam lasand
    lasare lasarea lasari lasarii lasarile lasat lasata lasate lasati laseaza lassa latele
    latelor launcher launches lauta lautarea lautari laute leacul leacului leacuri leacurile
    leacurilor leaderi leaderilor leafs leahul leahului leahuri leahurile leahurilor leaks
    lealul lealului leaning leans leaps lease leatul leatului leaturi leaturile leaturilor
    ledul ledului leduri ledurile ledurilor leeds lemnare lemnari lemne lends lenea letalii
    libel libela liberai liberal liberam liberat liberau liberei liberez liberia liberii
    libero libert liberti liberu libra lider lideri lifer liker limber liner linsa linsam
    linsand linsare linsarea linsari linsarii linsarile linsat linsata linsate linsati
    linseaza linsez linseze linsezi lisei lisele liselor liter litera litere liver loads
    lobul loburi loburile local lochul lochuri lochurile locked locking locks locui locuii
    locuiri locuirile locula locule loculi loculo loculu locus logul loguri logurile lomul
    lomuri lomurile loomed looming looms loons looped looping loops loosed loosing looted
    looting loots lotul lotului loturi loturile loturilor lozul lozuri lozurile lucea lufar
    lulea lumber lumea lunara lunare lunari lunaro lunaru lunca lunch lunched lunching lunec
    luneca luneo luneta lunga lungea lupea luxul luxului luxuri luxurile luxurilor macat
    macate macine macra magul magului maguri magurile magurilor maica maiene mailed mailing
    mails mailul maina maind mainez maini mains maioe maise maize maline manca mancam
    mancand mancare mancarea mancari mancarii mancarile mancat mancata mancate mancati manie
    mansa mantie manunt manunta manunte manunti maraca maraie marat marata marate marati
    marcai marcaj marcaje marcandu marcant marcanta marcante marcanti marcara marcareo
    marcase marcasi marcatei marcatii marcato marcatu marcau marce marcel marcele marchare
    marcharea marchari marcharii marcharile marcheaza marchez marcheze marchezi marci marcia
    marcie marco marcota marcote marcu marcuri marcurile marcut marcy marda mardea marea
    maream mareata mareati mareea maretie marfa marfare marga margarea margari margarii
    margea margie maria mariam mariat mariata mariate mariati marica marie mariez marieze
    mariezi marine marite marja marketingu marla marlea marna marnare marnarea marnari
    marnarii marnarile marne maroa maroie marsa marsam marsand marsare marsarea marsari
    marsarii marsarile marsat marsata marsate marsati marseaza marsez marseze marsezi marsh
    marta martei marteie martel martela marten martha marti martii martile martin martir
    martire martiu marty marva marza masaj masajul masajului masca mascam mascand mascare
    mascarea mascari mascarii mascarile mascat mascata mascate mascati massage massaged
    massages massaging mastere masterii matca match matea mated matele matelor mates mating
    mattie maxine medita meditam meditand meditare meditarea meditari meditarii meditarile
    meditat meditata meditate meditati mediteaza meditez mediteze meditezi menaj menajul
    menajului menajuri menajurile menajurilor merca mercam mercand mercat mercati mesaje
    mesaju mesajule mesas miaza miercuria miercurii milling minerea mineri misei misele
    miselor moaning moartea mocul modificai modificant modificanta modificante modificanti
    modificara modificareo modificarii modificase modificasi modificatei modificatia
    modificatie modificatii modificatio modificato modificatu modificau moine monah mondays
    monta monte months monto montu monty mooning mornings motam motand motare motarea motari
    motarii motarile motat motata motate motati moteaza motez moteze motezi mourning mouth
    mulam muland mulare mularea mulari mularii mularile mulat mulata mulate mulati muleaza
    mulez muleze mulezi multamesc mumele munar nailed nailing nails nalbire nalbirea nalbiri
    nalbirii nalbirile nalbirilor namiaza narata narate narati naseasca nasesc naseste
    nasesti nasim nasire nasirea nasit nasita nasiti nasterea nastereo nasteri nasture
    nasturii natei natele natelor necomandat nemele neprogramat neprogramata neprogramate
    neprogramati netam netand netat netati neteaza netei netele netelor netez neteze netezi
    netras netrasa netrase neumele newsletters nisei nisele niselor nitei nitele nitelor
    nodei nodele nodelor noele noelor noitei noitele noitelor nomei nomele nomelor nonei
    nonele nonelor nooks nopare noparea nopari noparii noparile nopeaza nopez norei norele
    nostei nostele nostelor notabile notai notandu notar notara notareo notariale notarize
    notaru notarule notary notase notasi notatei notatia notatie notatii notatio notato
    notatu notau noted notes notita notite notorii nouari nouarii noutate noutati noutei
    noutele noutelor novam novand novare novarea novari novarii novarile novat novata novate
    novati noveaza novei novele novelor novembers novez noveze novezi noxei noxele noxelor
    nucarul nucele nudele nufarul nuiele nulele numaru numarule numbed numbers numene numere
    nunele nunta nunti nurtured nurtures nuvele oamenii oates octobers ocupa ocupai ocupam
    ocupant ocupanta ocupara ocupate ocupati ocupatia ocupato ocupatu ocupau odelete ofera
    ofere oferea oferita oferite oferitei oferitele oferitelor ofertai ofertam ofertat
    ofertau ofertez oferteze ofertezi oferto ofisele ofiselor omeni opait opareasca oparesc
    opareste oparesti oparim oparire oparirea oparit oparita opariti opening opreati opresa
    opresai opresati oprescu opresie opresii oprii oprima oprime oprimi oprira oprireo
    opriri opris oprisa oprise oprisi oprite opritei opritii oprito opritu optim orant orate
    orated orates orating oreasca otarea otari otarii otele paciente pacientelor paciento
    pacientu pacientule pagul pagului paguri pagurilor pails paine palled pansa pansam
    pansand pansare pansarea pansari pansarii pansarile pansat pansata pansate pansati
    panseaza pansez panseze pansezi panty parata parate parati parca parcam parcand parcare
    parcarea parcari parcarii parcarile parcat parcata parcate parcati parch parcursu
    parcursule parity parnesti parry parta partajara partajareo partajari partajase
    partajate parte partea parti partie partly parts partu paseasca pasesc paseste pasesti
    pasienta pasientei pasientele pasim pasire pasirea pasit pasita pasiti pasty patele
    patent patents pates patty paunch pease pelete permissions pernita peroane persane
    persoana persoanei persoano personable personae personage personaje personal personala
    personalei personali personalo personals personalu petras phare phoned phones phoney
    phony pilling pirofil pirofile pirofilul pirofilului plansa plase pleads pleas pleasa
    pleased pleases plecase pledase plese pliase plimba plimbe plombai plombaj plombam
    plombat plombau plombei plombez plombo plots plotul plotului ploturi ploturile
    ploturilor pocneasca pocnesc pocneste pocnesti pocnim pocnire pocnirea pocnit pocnita
    pocniti poenita pofil pofile pofilul pofilului poneasca ponit popreasca popresc popreste
    popresti poprim poprire poprirea poprit poprita popriti porceasca porcesc porceste
    porcesti porcim porcire porcirea porcit porcita porciti porfire porneati porni pornii
    pornira pornireo porniri pornise pornisi pornite pornitei pornitii pornito pornitu
    portita prata prate prated prates prati prating precume precumele prelucrabile prelucrai
    prelucrara prelucrareo prelucrase prelucrasi prelucrate prelucrati prelucratii
    prelucratilor presti presume prezerva prezervam prezervand prezervare prezervarea
    prezervari prezervarii prezervarile prezervarilor prezervat prezervata prezervate
    prezervati primis primit primita primite prioritare prioritatea prioritateo prioritati
    priti proces procesa procese processes procesu profele profess professed professing
    profi profii profila profilari profilarile profilarilor profiled profiles profilez
    profilu profilule profir profire profirul profirului profit profite profitul profitului
    profituri profiturile profiturilor proful profule progradare progradarea progradari
    progradarii progradarile progradarilor programabile programai programandu programara
    programareo programase programasi programatei programatic programatii programatilor
    programato programatu programau programe programed programei programel programele
    programer programo programs programu programule progres progresa progrese progresu
    promile promotia promotie promotiei promotio promotion promotionala promotionalei
    promotionali promotionalo promotionalu promptii prone pronume pronumele propil propilul
    propilului prospect prospecta prospectai prospecte prospectiv prospectu prospectus
    prowess pulie pumele punea punning qmail qualifier qualifiers qualities quality raced
    races racing racord racordul racordului racorduri racordurile racordurilor rafted
    rafting raged rages raging railed railing rails raked rakes raking ranted ranting rants
    raped rapes raping raporta raportari raportarile raportarilor raportori raportorilor
    raportu raportule rapport rared rares raring rasesti rastere ratam ratare ratarea ratari
    ratat ratata ratate ratati ratei ratele ratelor ratese ratesu rateu ratez ratin ratina
    ratings ratos ratted ratting rauta rautate rautati rauti raved raves raving razed razes
    razing reaclame reacord reads reamintii reamintira reamintireo reamintise reamintisi
    reamintite reamintiti reamintitii reamintitilor reanunt reanunta reanuntam reanuntare
    reanuntarea reanuntari reanuntat reanuntata reanuntate reanuntati reanunte reanunti
    reara rearase reating reatintire reatintirea reatintiri reatintirii reatintirile
    reatintirilor reatrag reatraga reatrage reatragi reatras reauzi rebind rebinding rebinds
    rebord rebrasa rebuses reclam reclama reclamei reclamez reclamo recline reclined
    reclines reclining recomanda recomandai recomandam recomandara recomandarea recomandareo
    recomandari recomandase recomandata recomandate recomandati recomandato recomandatu
    recomandau recomdandat recorder recordings recordingu recordu recuse recuta recuz recuza
    recuzam recuzare recuzarea recuzari recuzat recuzata recuzate recuzati recuze redind
    redraga redragam redragare redragarea redragari redragat redragata redragate redragati
    reduse reenunt reenunta reenuntam reenuntare reenuntarea reenuntari reenuntat reenuntata
    reenuntate reenuntati reenunte reenunti referrals refind refise refug refuga refugarea
    refugari refuge refuges refugi refula refulam refulare refularea refulari refulat
    refulata refulate refulati refuma refumam refumare refumarea refumari refumat refumata
    refumate refumati refur refura refuram refurat refurati refure refuri refusei refusese
    refusesi refuta refutam refutare refutarea refutari refutat refutata refutate refutati
    refute refuted refutes refuting refuzai refuzara refuzareo refuzarii refuzase refuzasi
    refuzatei refuzatii refuzato refuzatu refuzau refuzu refuzuri registre relare relarea
    relari relarii relarile relat relata relate relati relucrare relucrarea relucrari
    relucrarii relucrarile relucrarilor remaind remainder remainders remand remanded
    remanding remands remina reming remintire remintirea remintiri remintirii remintirile
    remintirilor remote remotes remover removers renuanta renuantam renuantare renuantarea
    renuantari renuantat renuantata renuantate renuantati renume renumele renuntai renuntara
    renuntareo renuntarii renuntase renuntatei renuntatii renuntato renuntatu renuntau
    renuntea renunteam renunteati renuntii renuntim renuntit renuntiti reoind reporta
    reporti reportu reportul reportului reporturi reporturile reporturilor repot reprase
    reprogram reprogramabile reprogramai reprogramandu reprogramara reprogramareo
    reprogramase reprogramasi reprogramatei reprogramatii reprogramatilor reprogramato
    reprogramatu reprogramau reprogramed reprograms repuse rerag reraga rerage reragi reras
    rerase reschedules resister resisters resort resorts resunta resuntam resuntat resuntati
    retails retarase retasa retase reteag reteasa reteaza reterasa retes retort retorts
    retrace retrada retradam retradare retradarea retradari retradat retradata retradate
    retradati retragana retragea retrageai retrageam retrageati retragem retragera
    retragereo retrageti retrai retraia retraiam retraiati retraii retraise retransa retrapa
    retrapam retrapare retraparea retrapari retrapat retrapati retrasai retrasam retrasare
    retrasarea retrasari retrasat retrasata retrasate retrasati retrasau retrasei retrasem
    retrasez retrasi retraso retrasu retrata retratam retratare retratarea retratari
    retratat retratata retratate retratati retriase retrisa reurase reuse reused reuses
    reusing reuza reuzam reuzare reuzarea reuzari reuzat reuzata reuzate reuzati reuzi
    revindere revitalizare revoce rewind rewinding rewinds reword reworded rewording rewords
    rezerea rezeream rezereati rezerv rezervai rezervandu rezervara rezervareo rezervase
    rezervasi rezervatar rezervatei rezervatia rezervatie rezervatii rezervatilor rezervatio
    rezervato rezervatu rezervau rezerve rezervei rezervele rezervi rezervo rezervoare rhone
    rites rocul rocuri rocurile roland rolare rolarea rolari rolarii rolarile rolat rolata
    rolate rolati rooked rooking rooks rotam rotand rotare rotarea rotari rotarii rotarile
    rotat rotata rotate rotati roteaza rotez roteze rotezi rudarea rudari rudarii rufare
    rufari rufarii rugam rugand rugare rugarea rugari rugarii rugarile rugat rugata rugate
    rugati ruining rujam rujand rujare rujarea rujari rujarii rujarile rujat rujati rujeaza
    rujez rujeze rujezi rulada rulade rulai rulaj rulaje rulandu rulant rulanta rulante
    rulanti rulara rulareo rulase rulasi rulatei rulatii rulato rulatu rulau ruled ruler
    rules ruleta rulete rulota rulote ruluri rulurii rulurile rupand rutam rutand rutare
    rutarea rutari rutarii rutarile rutat rutata rutate rutati ruteaza rutez ruteze rutezi
    sagul sagului saguri sagurile sagurilor sailed sailing sails salaam salam saland salarii
    salata salate salba salcam salific salifica salificam salificare salificarea salificari
    salificat salificati salifice salifici saliva salivam salivand salivare salivarea
    salivari salivarii salivarile salivat salivata salivate salivati saliveaza salivez
    saliveze salivezi salsa salta saltam saltand saltare saltarea saltari saltarii saltarile
    saltat saltata saltate saltati salvabile salvage salvai salvandu salvara salvareo
    salvase salvasi salvatei salvatii salvato salvatu salvau salve salved salvei salvele
    salver salves salvia salviri salvirii salvo sambrata sanal sanale sancel sansa
    saptamanala saptamanale saptamanali saptamanalo saptamanalu saptamano sarata sarate
    sarati sarca saris saseasca sasesc saseste sasesti sasim sasit sasita sasiti sated
    satele satelor sates sating saturdays saute scaieti scara scarari scararii scararilor
    scare scared scares scaring scart schedele scheduler schedulers schie schima schimbai
    schimbara schimbareo schimbarii schimbas schimbase schimbasi schimbatei schimbatii
    schimbato schimbatu schimbau schimbea schimbu schimburi schime schimei schimo scoarta
    scoarte scoata scoate scobari scobarii scobarilor scolare scolarea scolari scolarii
    scolarilor scone scones scope scoped scopes scoping scorer scoreri scorerii scorerilor
    scorers scoria scorie scorn scorned scorning scorns scorpat scorpata scorpate scorpati
    scortari scortarii scortarilor scoru scoruri scorurile scorurilor scorus scose scota
    scotand scote scots scoured scouring scram scria scriati scrib scribe scriem scrieri
    scrii scrime scrin scrinti scrip scripeti scrips scrire scrisa scrise scrisi scriso
    scrisu scriu seaca seama searcher searches seared searing searo sears seasa seaua seaza
    secara secvent secventi secventii secventilor secvento secventu sedara sedeaza sedita
    sedna seina seine seini selva seman semana semanam semanare semanarea semanari semanat
    semanata semanate semanati semeata semen semene semeni semii seminare semnai semnal
    semnala semnale semnara semnareo semnarii semnase semnasi semnatar semnatei semnatii
    semnato semnatu semnau semnez semnu semui senare senat senate senna separa septembers
    sequenced sequencer sequences serge serie serra setara sexting sfara sfare sforari
    sforarii sforarilor shade shaded shades shading shake shakes shaking shale shame shamed
    shames shaming shane shape shaped shapes shaping shard shards shari shark sharked
    sharking sharks sharp sharpe sharped sharping sharps shary shave shaved shaves shaving
    sheared shearing shire shires shone shopped shore shored shores shoring shots shred
    sicrie silnic silva slats slava slits slitul slitului slituri sliturile sliturilor slobs
    sloes slogs sloiul sloiului sloiuri sloiurile sloiurilor slopped slops slotari slotarile
    slotarilor sloth sloths slotu slotule slows sluts slutul slutului smara smart smarted
    smarting smarts snare snared snares snaring snore snored snores snoring snots soare
    soared soaring socrate socul socuri socurile solva solvat solvata solvate solvati
    somnare somnarea somnari somni sopped sores sotam sotand sotare sotarea sotari sotarii
    sotarile sotat sotati soteaza sotei sotele sotelor sotez soteze sotezi sotul sotului
    soturi soturile soturilor spare spared spares sparing spart speteaza spore spored spores
    sporing spots spotul spotului spoturi spoturile spoturilor sprie sprit srotul srotului
    sroturi sroturile sroturilor starc starch starched starching stare stared stares staret
    stari staring stark starling starr starred starring stars starta starter startez
    startled startling startu startx staru starv starved starving stated states stating
    statistic statistical statistici statisticii statisticile statisticilor statistico
    statisticu stats statu statua statue statues statui statul statuse statusi statusu
    statusule statut statutul statutului stearga stearpa steaza stepped stere sterg stergea
    stergeai stergeati stergem stergeri stergi sterne sterpe stersa sterse stert stoarsa
    stomped stooped stopper store stored stores storing strat strie stropped stuart stuarts
    sturt subscriber subscribers subscrie subscrise sulare sumarul sumele sunar sundae
    sundas sundays sundry sunning surie suriname surnames suteaza svart swopped swore tabul
    tabului taburi taburile taburilor tacul tacului tacuri tacurile tacurilor tagule tagus
    tailed tailing tails taine talul talului taluri talurile talurilor tansa tapul tapului
    tapuri tapurile tapurilor tarata taratare taratarea taratari taratat taratata taratate
    taratati tarate tarati tarca tarcam tarcand tarcare tarcarea tarcari tarcarii tarcarile
    tarcat tarcata tarcate tarcati targul targului targuri targurile targurilor tarts tarul
    tarului taruri tarurile tarurilor tastere tasul tasului tasuri tasurile tasurilor tatele
    tatelor taului tauri taurile taurilor tauti teara teats telefona telefonia telefonica
    telefonice telefonici telefonico telefonicu telefonie telefonii telefonio telefonu
    telefonule tented tenting tents terci terific terifica terifice terifici terii terina
    terine termen termene termeni termia termic termica termice termici termie termiei
    termii terminai terminal terminala terminale terminali terminara terminareo terminarii
    terminase terminasi terminated terminatei terminates terminatia terminatie terminatii
    terminatio terminativ terminato terminatu terminau terming terminu termio termion
    termioni termit termita termite terni ternii terpin terpina terpine terri terta terte
    tertei tertia tertiei tertina tertine tertip terto tertu tested testing tests texas
    texes texte textu thirds thursdays tiber tichete tichetele tichetelor tiitoare tilling
    timis tinerea tineri tisei tisele tiselor toady tocul tocuri tocurile toddy tokay
    tomorrows topped tortii totei totele totelor tourney traces trage trata tratam
    tratamente tratamentu tratamentule tratare tratarea tratari tratat tratata tratate
    tratati trate treatments trecura trecut trecute trecuti trecuto trecutu triace triade
    triaje triale triase triate triggere triggeru trimise trimisi trimisu trimitea trimiteai
    trimiteam trimiteati trimiteri trimiti trims trocuta tuesdays tugul tugului tuguri
    tugurile tugurilor tunar turti turtii turture udate udatele udatelor umarul umber undate
    undated unhook unroll unrolled unrolling unrolls updater urata urate urati uratoare
    uratoarele urcatoare urcatoarele urgentai urgentam urgentat urgentau urgente urgenti
    urgento urgentu urlam urland urlare urlarea urlari urlarii urlarile urlat urlata urlate
    urlati urlatoare urlatoarele urmatoarea urmatoarei urograma vagul vagului valva valvare
    valvari valvarii varata varate varati varcat varcata varcate varcati vasesti venders
    veneer veridic veridica veridice veridici verificai verificara verificareo verificarii
    verificase verificasi verificatei verificatia verificatie verificatii verificatio
    verificativ verificato verificatu verificau vermin vermina vermine versific versifica
    versificam versificare versificarea versificari versificat versificata versificate
    versificati versifice versifici vierea vieri viisoare viitoarea viitoarei vinari
    vinderea vinderi vinei vinere vinereo vinerii vinetea vineti vintrea vinuri visei visele
    viselor voitoare votam votand votare votarea votari votarii votarile votat votata votate
    votati voteaza votez voteze votezi vrata vrati vuitoare wailed wailing wails walled
    warty websites websiteu wednesdays whomever willing withdrawn withdrew yates yesterdays
    zilnica zilnice zilnici zilnico zilnicu zisei zisele ziselor zlotul zlotului zulie
"""
KNOWN_WORDS: frozenset[str] = frozenset(_WORDS.split())
